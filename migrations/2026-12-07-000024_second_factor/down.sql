DROP TABLE mfa_challenges;
DROP TABLE backup_codes;
DROP TABLE totp_secrets;
ALTER TABLE users DROP COLUMN mfa_enabled;
