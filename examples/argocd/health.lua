-- Argo CD health check for modeldeploy.io/ModelDeployment, following the status contract of the
-- README (kstatus conditions written by the operator):
--   generation not observed yet               -> Progressing
--   Stalled=True (rolled back, invalid spec,
--     digest mismatch, progress deadline)     -> Degraded, with Stalled's reason and message
--   Paused=True or AwaitingApproval=True       -> Suspended, with that condition's message
--   Ready=True                                 -> Healthy
--   Reconciling=True, or anything else         -> Progressing
-- Tested with a real Lua 5.1 (lupa) in tests/unit/test_argocd_health.py.
local hs = {}

local function condition(conditions, ctype)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    if text ~= "" then
      text = text .. ": " .. c.message
    else
      text = c.message
    end
  end
  if text == "" then
    return fallback
  end
  return text
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = obj.status.conditions
local stalled = condition(conditions, "Stalled")
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local awaiting = condition(conditions, "AwaitingApproval")
if is_true(awaiting) then
  hs.status = "Suspended"
  hs.message = describe(awaiting, "Awaiting approval")
  return hs
end

local paused = condition(conditions, "Paused")
if is_true(paused) then
  hs.status = "Suspended"
  hs.message = describe(paused, "Paused")
  return hs
end

local ready = condition(conditions, "Ready")
if is_true(ready) then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

local reconciling = condition(conditions, "Reconciling")
local progressing = condition(conditions, "Progressing")
hs.status = "Progressing"
if is_true(reconciling) then
  hs.message = describe(progressing, describe(reconciling, "Reconciling"))
else
  hs.message = describe(ready, "Waiting for the ModelDeployment to become Ready")
end
return hs
