-- Approve the approval step the canary waits at: modeldeploy.io/approve=<canary revision>, or
-- <revision>/step-<n> when an earlier approval step of the same revision took the plain value.
if obj.status == nil or obj.status.canary == nil then
  error("no rollout in progress: nothing to approve", 0)
end
local canary = obj.status.canary
local rev = canary.revision
local handled = (obj.status.handled or {}).approve
local value = rev
if handled ~= nil and (handled == rev or string.sub(handled, 1, string.len(rev) + 1) == rev .. "/") then
  value = rev .. "/step-" .. tostring((canary.step or 0) + 1)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modeldeploy.io/approve"] = value
obj.metadata.annotations["modeldeploy.io/approve-by"] = "argocd"
return obj
