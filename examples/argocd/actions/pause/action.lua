-- Hold the rollout where it is: spec.paused = true.
obj.spec.paused = true
return obj
