-- lti_jwks.version: the change counter value (ltikeys_changes.version) of
-- the transaction that last changed the key's row, so that a JWKS can be
-- brought up to date from the rows changed since the version it was built
-- at. Rows written before this migration keep 0.

-- +goose Up
ALTER TABLE `lti_jwks` ADD `version` integer NOT NULL DEFAULT 0;
CREATE INDEX `idx_lti_jwks_version` ON `lti_jwks`(`version`);
UPDATE `ltikeys_schema` SET `version` = 2 WHERE `id` = 1;
