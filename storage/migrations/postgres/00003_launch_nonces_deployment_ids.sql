-- lti_launch_nonces: the (issuer, nonce) pairs of launches already
-- accepted, each until its token expires (Store.UseNonce), so that a
-- launch is accepted once across every replica; expired rows are deleted
-- by Store.PruneNonces, in batches, by expires_at. The table is written on
-- its own, never with the others.
--
-- platform_registrations.deployment_ids: the deployment ids a registration
-- allows, as a JSON array of strings; '[]', the value of every row written
-- before this migration, allows any.
--
-- Both only add: a new table, and a column with a constant default, which
-- rewrites no rows. A release before this migration still running reads
-- and writes as before (it inserts registrations allowing any deployment,
-- and its updates leave the column as it is).

-- +goose Up
CREATE TABLE lti_launch_nonces (
    issuer varchar(255) NOT NULL,
    nonce varchar(255) NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (issuer, nonce)
);
CREATE INDEX idx_lti_launch_nonces_expires_at ON lti_launch_nonces (expires_at);
ALTER TABLE platform_registrations ADD COLUMN deployment_ids text NOT NULL DEFAULT '[]';
UPDATE ltikeys_schema SET version = 3 WHERE id = 1;
