-- certharvest schema version 1: the certificates, their history, the
-- verdicts, and a notification on every certificate stored (for an export
-- that follows the store). Every name is unqualified: the tables go in the
-- first schema of the connection's search_path.

-- certificates: the current certificate of each address (the folder
-- store's <address>.crt).
CREATE TABLE certificates (
    address    text PRIMARY KEY,       -- normalised: lower case ASCII
    der        bytea NOT NULL,         -- the certificate (DER)
    sha256     text NOT NULL,          -- of der, hex: the report's cert.sha256
    not_before timestamptz NOT NULL,
    not_after  timestamptz NOT NULL,
    subject    text NOT NULL,
    issuer     text NOT NULL,
    serial     text NOT NULL,          -- hex, as the report's cert.serial
    key_type   text NOT NULL,          -- as the report's cert.key: "RSA-2048"
    stored_at  timestamptz NOT NULL,
    message_id text                    -- the report's id of the message it came from; NULL: imported
);
CREATE INDEX certificates_not_after ON certificates (not_after);

-- certificate_history: every certificate an address's current one
-- replaced (the folder store's history/<address>/<sha256>.crt).
CREATE TABLE certificate_history (
    address     text NOT NULL,
    der         bytea NOT NULL,
    sha256      text NOT NULL,
    not_before  timestamptz NOT NULL,
    not_after   timestamptz NOT NULL,
    subject     text NOT NULL,
    issuer      text NOT NULL,
    serial      text NOT NULL,
    key_type    text NOT NULL,
    stored_at   timestamptz NOT NULL,
    message_id  text,
    replaced_at timestamptz NOT NULL,
    PRIMARY KEY (address, sha256)
);

-- verdicts: one row per message, keyed by the report line's id, so that a
-- message verified again (after a crash) keeps its first row. The line's
-- members are columns, and the whole line is in line.
CREATE TABLE verdicts (
    id            text PRIMARY KEY,
    time          timestamptz NOT NULL,
    source        text NOT NULL,
    path          text,
    message_id    text,
    envelope_from text,
    envelope_to   text[],
    remote_addr   text,
    context       jsonb,
    from_address  text,                -- the line's "from"
    outcome       text NOT NULL,
    reason        text NOT NULL,
    detail        text NOT NULL,
    action        text,
    dkim_domain   text,
    dkim_selector text,
    cert_sha256   text,
    cert_file     text,
    verified_at   timestamptz NOT NULL,
    duration_ms   double precision NOT NULL,
    line          jsonb NOT NULL
);
CREATE INDEX verdicts_time ON verdicts (time);
CREATE INDEX verdicts_from_address ON verdicts (from_address);

-- Every certificate stored (inserted or replaced) is announced on the
-- channel certharvest_certificates, its address the payload, when its
-- transaction commits: an export that follows the store (LISTEN) writes
-- that address's file again.
CREATE FUNCTION certharvest_notify_certificate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('certharvest_certificates', NEW.address);
    RETURN NULL;
END
$$;
CREATE TRIGGER certificates_notify AFTER INSERT OR UPDATE ON certificates
    FOR EACH ROW EXECUTE FUNCTION certharvest_notify_certificate();
