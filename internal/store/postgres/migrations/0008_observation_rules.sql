-- The ordering rules an observation asked for (hub.Observation): current_state
-- for a provider that states the current status without a timestamp
-- (Identomat), final_if_no_attempts for a rejection that is final only when
-- no attempt is left (KYCAID). They are kept so that a verification's
-- timeline, run through hub.Apply again, gives its stored state.
ALTER TABLE observations ADD COLUMN current_state boolean NOT NULL DEFAULT false;
ALTER TABLE observations ADD COLUMN final_if_no_attempts boolean NOT NULL DEFAULT false;
