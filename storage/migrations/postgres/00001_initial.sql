-- The schema that releases before versioned migrations created with GORM's
-- AutoMigrate, exactly as they left a new database (pg_dump -s shows the
-- same tables, sequence, constraints and indexes). Open never runs this on
-- such a database: it records it as applied instead (see storage/doc.go).

-- +goose Up

-- Key pairs. registration_id is indexed but has no foreign key:
-- CreateRegistration inserts the key before its registration.
CREATE TABLE lti_jwks (
    id bigserial PRIMARY KEY,
    kid varchar(255) NOT NULL,
    alg varchar(16) NOT NULL,
    registration_id varchar(36) NOT NULL,
    public_jwk text NOT NULL,
    private_jwk bytea NOT NULL,
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    activates_at timestamptz,
    superseded_at timestamptz,
    retire_at timestamptz,
    retired_at timestamptz
);
CREATE UNIQUE INDEX idx_lti_jwks_kid ON lti_jwks (kid);
CREATE INDEX idx_lti_jwks_registration_id ON lti_jwks (registration_id);
CREATE INDEX idx_lti_jwks_retire_at ON lti_jwks (retire_at);

-- Platform registrations. Only live ones (deleted_at IS NULL) hold their
-- (issuer, client_id).
CREATE TABLE platform_registrations (
    id varchar(36) PRIMARY KEY,
    issuer varchar(255) NOT NULL,
    client_id varchar(255) NOT NULL,
    auth_endpoint text NOT NULL,
    jwks_uri text NOT NULL,
    token_endpoint text NOT NULL,
    jwk_id bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    pending_jwk_id bigint,
    deleted_at timestamptz,
    CONSTRAINT fk_platform_registrations_jwk FOREIGN KEY (jwk_id) REFERENCES lti_jwks (id) ON UPDATE RESTRICT ON DELETE RESTRICT
);
CREATE INDEX idx_platform_registrations_jwk_id ON platform_registrations (jwk_id);
CREATE INDEX idx_platform_registrations_pending_jwk_id ON platform_registrations (pending_jwk_id);
CREATE UNIQUE INDEX idx_platform_registrations_live_issuer_client_id ON platform_registrations (issuer, client_id) WHERE deleted_at IS NULL;

-- The change counter that Store.Version reads, in its only row.
CREATE TABLE ltikeys_changes (
    id bigint PRIMARY KEY,
    version bigint NOT NULL DEFAULT 0
);
INSERT INTO ltikeys_changes (id, version) VALUES (1, 0);

-- The schema version, in its only row: every migration sets it to its own
-- number, and releases before versioned migrations refuse a database where
-- it is above 1.
CREATE TABLE ltikeys_schema (
    id bigint PRIMARY KEY,
    version bigint NOT NULL
);
INSERT INTO ltikeys_schema (id, version) VALUES (1, 1);
