-- Let the rolled-back revision roll out again: modeldeploy.io/retry=<that revision>.
if obj.status == nil or obj.status.rolledBackRevision == nil then
  error("no rolled-back revision to retry", 0)
end
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modeldeploy.io/retry"] = obj.status.rolledBackRevision.revision
obj.metadata.annotations["modeldeploy.io/retry-by"] = "argocd"
return obj
