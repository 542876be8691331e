-- lti_launch_nonces: the (issuer, nonce) pairs of launches already
-- accepted, each until its token expires (Store.UseNonce); expired rows
-- are deleted by Store.PruneNonces, by expires_at.
--
-- platform_registrations.deployment_ids: the deployment ids a registration
-- allows, as a JSON array of strings; '[]', the value of every row written
-- before this migration, allows any.

-- +goose Up
CREATE TABLE `lti_launch_nonces` (`issuer` text NOT NULL,`nonce` text NOT NULL,`expires_at` datetime NOT NULL,`created_at` datetime NOT NULL,PRIMARY KEY (`issuer`,`nonce`));
CREATE INDEX `idx_lti_launch_nonces_expires_at` ON `lti_launch_nonces`(`expires_at`);
ALTER TABLE `platform_registrations` ADD `deployment_ids` text NOT NULL DEFAULT '[]';
UPDATE `ltikeys_schema` SET `version` = 3 WHERE `id` = 1;
