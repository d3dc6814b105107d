-- certharvest schema version 3: certificates that certharvest revalidate
-- retired from their address (revoked), kept in the history with why (the
-- folder store's history/<address>/<sha256>.revoked). A row with
-- retired_reason set also bounds what may be stored for its address
-- afterwards, as the kind retired_as says: only a certificate with a later
-- not_before.
ALTER TABLE certificate_history
    ADD COLUMN retired_reason    text,         -- the report's reason (cert_revoked); NULL: replaced by a newer one
    ADD COLUMN retired_detail    text,         -- the report's detail: who said so
    ADD COLUMN revoked_at        timestamptz,  -- the issuer's revocation time
    ADD COLUMN revocation_reason text,         -- the issuer's CRLReason: keyCompromise, superseded…
    ADD COLUMN retired_as        text;         -- what it was: both (der, no sign_der), encryption (der beside sign_der), signing (sign_der)
