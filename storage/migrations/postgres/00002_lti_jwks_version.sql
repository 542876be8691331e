-- lti_jwks.version: the change counter value (ltikeys_changes.version) of
-- the transaction that last changed the key's row, so that a JWKS can be
-- brought up to date from the rows changed since the version it was built
-- at. Rows written before this migration keep 0.
--
-- Adding a column with a constant default rewrites no rows; the index is
-- built with writes to lti_jwks held back, which one row per key makes
-- brief.

-- +goose Up
ALTER TABLE lti_jwks ADD COLUMN version bigint NOT NULL DEFAULT 0;
CREATE INDEX idx_lti_jwks_version ON lti_jwks (version);
UPDATE ltikeys_schema SET version = 2 WHERE id = 1;
