-- The schema that releases before versioned migrations created with GORM's
-- AutoMigrate, statement for statement as they wrote it, so that
-- sqlite_master holds the same text. Open never runs this on such a
-- database: it records it as applied instead (see storage/doc.go).

-- +goose Up

-- Key pairs. registration_id is indexed but has no foreign key:
-- CreateRegistration inserts the key before its registration.
CREATE TABLE `lti_jwks` (`id` integer PRIMARY KEY AUTOINCREMENT,`kid` text NOT NULL,`alg` text NOT NULL,`registration_id` text NOT NULL,`public_jwk` text NOT NULL,`private_jwk` blob NOT NULL,`active` numeric NOT NULL DEFAULT true,`created_at` datetime NOT NULL,`updated_at` datetime NOT NULL,`activates_at` datetime,`superseded_at` datetime,`retire_at` datetime,`retired_at` datetime);
CREATE UNIQUE INDEX `idx_lti_jwks_kid` ON `lti_jwks`(`kid`);
CREATE INDEX `idx_lti_jwks_registration_id` ON `lti_jwks`(`registration_id`);
CREATE INDEX `idx_lti_jwks_retire_at` ON `lti_jwks`(`retire_at`);

-- Platform registrations. Only live ones (deleted_at IS NULL) hold their
-- (issuer, client_id).
CREATE TABLE `platform_registrations` (`id` text NOT NULL,`issuer` text NOT NULL,`client_id` text NOT NULL,`auth_endpoint` text NOT NULL,`jwks_uri` text NOT NULL,`token_endpoint` text NOT NULL,`jwk_id` integer NOT NULL,`created_at` datetime NOT NULL,`updated_at` datetime NOT NULL,`pending_jwk_id` integer,`deleted_at` datetime,PRIMARY KEY (`id`),CONSTRAINT `fk_platform_registrations_jwk` FOREIGN KEY (`jwk_id`) REFERENCES `lti_jwks`(`id`) ON DELETE RESTRICT ON UPDATE RESTRICT);
CREATE INDEX `idx_platform_registrations_jwk_id` ON `platform_registrations`(`jwk_id`);
CREATE INDEX `idx_platform_registrations_pending_jwk_id` ON `platform_registrations`(`pending_jwk_id`);
CREATE UNIQUE INDEX `idx_platform_registrations_live_issuer_client_id` ON `platform_registrations`(`issuer`,`client_id`) WHERE deleted_at IS NULL;

-- The change counter that Store.Version reads, in its only row.
CREATE TABLE `ltikeys_changes` (`id` integer,`version` integer NOT NULL DEFAULT 0,PRIMARY KEY (`id`));
INSERT INTO `ltikeys_changes` (`id`,`version`) VALUES (1,0);

-- The schema version, in its only row: every migration sets it to its own
-- number, and releases before versioned migrations refuse a database where
-- it is above 1.
CREATE TABLE `ltikeys_schema` (`id` integer,`version` integer NOT NULL,PRIMARY KEY (`id`));
INSERT INTO `ltikeys_schema` (`id`,`version`) VALUES (1,1);
