-- certharvest schema version 2: an address's signing certificate, when it
-- is not the certificate to encrypt to (a dual-key sender), and the
-- sender's SMIMECapabilities. certificates.der is the certificate to
-- encrypt to (the folder store's <address>.crt), as before; a row that
-- version 1 wrote has no signing certificate of its own (der signs) and
-- no capabilities recorded.
ALTER TABLE certificates
    ADD COLUMN sign_der bytea,          -- the signing certificate (DER), the folder store's <address>.sign.crt; NULL: der signs
    ADD COLUMN capabilities text[];     -- SMIMECapabilities with der, the report's "capabilities" (<address>.caps); NULL: none recorded
