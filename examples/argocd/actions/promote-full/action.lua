-- Skip every remaining step and the analysis; the canary is promoted once Ready at full size:
-- modeldeploy.io/promote-full=<a new value> (the operator acts once per value).
if obj.status == nil or obj.status.canary == nil then
  error("no rollout in progress: nothing to promote", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modeldeploy.io/promote-full"] = "argocd " .. os.date("!%Y-%m-%dT%H:%M:%SZ")
obj.metadata.annotations["modeldeploy.io/promote-full-by"] = "argocd"
return obj
