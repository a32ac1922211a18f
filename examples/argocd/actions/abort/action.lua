-- Roll the canary back now: modeldeploy.io/abort=<a new value> (the operator acts once per value).
if obj.status == nil or obj.status.canary == nil then
  error("no rollout in progress: nothing to abort", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modeldeploy.io/abort"] = "argocd " .. os.date("!%Y-%m-%dT%H:%M:%SZ")
obj.metadata.annotations["modeldeploy.io/abort-by"] = "argocd"
return obj
