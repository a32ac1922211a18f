-- Argo CD resource actions for modeldeploy.io/ModelDeployment: which actions the UI and
-- `argocd app actions list` offer, each disabled when it would mean nothing in the object's state.
-- Each action writes what the operator already reads (README, "Manual controls"). Tested with a real
-- Lua 5.1 (lupa) in tests/unit/test_argocd_actions.py.
local actions = {}
local status = obj.status or {}
local spec = obj.spec or {}

local function is_true(ctype)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == ctype then
      return c.status == "True"
    end
  end
  return false
end

local handled = status.handled or {}
local rolled_back = status.rolledBackRevision
local in_rollout = status.canary ~= nil

actions["approve"] = {["disabled"] = not is_true("AwaitingApproval"), ["iconClass"] = "fa fa-fw fa-check"}
actions["abort"] = {["disabled"] = not in_rollout, ["iconClass"] = "fa fa-fw fa-times-circle"}
actions["retry"] = {
  ["disabled"] = rolled_back == nil or handled.retry == rolled_back.revision,
  ["iconClass"] = "fa fa-fw fa-redo-alt"
}
actions["promote-full"] = {["disabled"] = not in_rollout, ["iconClass"] = "fa fa-fw fa-angle-double-right"}
actions["pause"] = {["disabled"] = spec.paused == true, ["iconClass"] = "fa fa-fw fa-pause-circle"}
actions["resume"] = {["disabled"] = spec.paused ~= true, ["iconClass"] = "fa fa-fw fa-play-circle"}
return actions
