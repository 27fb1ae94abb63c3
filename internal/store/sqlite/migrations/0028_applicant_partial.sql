-- verifications_applicant held every verification, also those without an
-- applicant reference (Identomat and Fractal give none: 45 % of the
-- harness's mix), all under the one value '' that no filter asks for. Like
-- verifications_level (0026) it now holds only the verifications that have
-- one, and a webhook of such a provider writes one B-tree less. The list
-- query repeats the index's condition, as SQLite uses a partial index only
-- then (TestListPlans).
DROP INDEX verifications_applicant;
CREATE INDEX verifications_applicant ON verifications (applicant_ref, id) WHERE applicant_ref <> '';
