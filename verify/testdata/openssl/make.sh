#!/bin/sh
# Makes the OpenSSL test vectors of this folder: a PKI and S/MIME messages
# signed by `openssl cms -sign` (and `openssl smime -sign` for the legacy
# x-pkcs7 types), an independent producer beside internal/testcorpus.
# verify/openssl_test.go reads them (README.md says what each one is).
#
# Run it from this folder with OpenSSL 3.0 or later: sh make.sh
# Keys are fresh on every run; the validity periods are fixed
# (2026-01-01 to 2036-01-01), so the tests verify at 2026-06-01.
set -eu
OPENSSL=${OPENSSL:-openssl}
out=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

cat >ca.cnf <<'CNF'
[ca]
default_ca = ca
[ca]
database = index.txt
new_certs_dir = .
serial = serial
policy = any
copy_extensions = none
unique_subject = no
default_md = sha256
[any]
commonName = supplied
emailAddress = optional
[root]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
# Leaves for signing and encryption (RFC 8550 §4.4.2): an RSA key is
# encrypted to by key transport (keyEncipherment), an EC key by key
# agreement (keyAgreement).
[leaf-rsa]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:copy
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf-ec]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = emailProtection
subjectAltName = email:copy
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
# Signing only (the S/MIME BR strict profile's signing certificates, a
# dual-key PKI's, any Ed25519 one).
[leaf-sign]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = emailProtection
subjectAltName = email:copy
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
# Encryption only: a dual-key sender's second certificate.
[leaf-enc]
basicConstraints = critical, CA:false
keyUsage = critical, keyEncipherment
extendedKeyUsage = emailProtection
subjectAltName = email:copy
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
CNF
: >index.txt
echo 01 >serial
dates="-startdate 260101000000Z -enddate 360101000000Z"

# key NAME ALGORITHM [OPTION]: a private key.
key() { "$OPENSSL" genpkey -algorithm "$2" ${3:+-pkeyopt "$3"} -out "$1.key" 2>/dev/null; }
# csr NAME SUBJECT: a request for NAME's key.
csr() { "$OPENSSL" req -new -config ca.cnf -key "$1.key" -subj "$2" -out "$1.csr"; }
# issue NAME ISSUER EXTENSIONS [ca OPTIONS...]: NAME's certificate, signed
# by ISSUER.
issue() {
	name=$1 issuer=$2 ext=$3
	shift 3
	"$OPENSSL" ca -batch -notext -config ca.cnf $dates -extensions "$ext" \
		-cert "$issuer.pem" -keyfile "$issuer.key" -in "$name.csr" -out "$name.pem" "$@" 2>/dev/null
}

key root RSA rsa_keygen_bits:2048
csr root "/CN=certharvest OpenSSL Root"
"$OPENSSL" ca -batch -notext -config ca.cnf $dates -extensions root -selfsign \
	-keyfile root.key -in root.csr -out root.pem 2>/dev/null

# Intermediates: RSA signed with RSASSA-PSS SHA-256 (salt as long as the
# hash), P-384 signed with SHA-384, Ed25519.
key inter-rsa RSA rsa_keygen_bits:2048
csr inter-rsa "/CN=certharvest OpenSSL Intermediate RSA"
issue inter-rsa root intermediate -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest
key inter-ec EC ec_paramgen_curve:P-384
csr inter-ec "/CN=certharvest OpenSSL Intermediate P-384"
issue inter-ec root intermediate -md sha384
key inter-ed ED25519
csr inter-ed "/CN=certharvest OpenSSL Intermediate Ed25519"
issue inter-ed root intermediate

# leaf NAME ADDRESS ISSUER ALGORITHM OPTION [ca OPTIONS...]: a leaf for
# signing and encryption (leaf-rsa, leaf-ec), or with the extensions
# $profile when set (leaf-sign, leaf-enc).
leaf() {
	name=$1 addr=$2 issuer=$3 alg=$4 opt=$5
	shift 5
	key "$name" "$alg" "$opt"
	csr "$name" "/CN=$addr/emailAddress=$addr"
	case $alg in RSA*) kind=leaf-rsa ;; EC) kind=leaf-ec ;; *) kind=leaf-sign ;; esac
	issue "$name" "$issuer" "${profile:-$kind}" "$@"
}
profile=
leaf rsa rsa@example.com inter-rsa RSA rsa_keygen_bits:2048 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest
leaf p256 p256@example.net inter-ed EC ec_paramgen_curve:P-256
leaf p384 p384@example.org inter-ec EC ec_paramgen_curve:P-384 -md sha384
leaf p521 p521@example.com inter-ec EC ec_paramgen_curve:P-521 -md sha512
leaf ed25519 ed25519@example.net inter-ed ED25519 ""
# Signing-only certificates, and a dual-key sender: a signing-only
# certificate and an encryption-only one (another key) for one address.
profile=leaf-sign
leaf signonly-rsa signonly.rsa@example.com inter-rsa RSA rsa_keygen_bits:2048
leaf signonly-p256 signonly.p256@example.net inter-ec EC ec_paramgen_curve:P-256 -md sha384
leaf dual-sign dual@example.org inter-rsa RSA rsa_keygen_bits:2048
profile=leaf-enc
leaf dual-enc dual@example.org inter-rsa RSA rsa_keygen_bits:2048
profile=
# Weak ones: an RSA-1024 key; a certificate signed with SHA-1; one signed
# with RSASSA-PSS and the longest salt (other parameters than a
# certificate's, S/MIME BR §7.1.3.2).
leaf rsa1024 rsa1024@example.org inter-rsa RSA rsa_keygen_bits:1024
leaf sha1cert sha1cert@example.com inter-rsa RSA rsa_keygen_bits:2048 -md sha1
leaf psssalt psssalt@example.net inter-rsa RSA rsa_keygen_bits:2048 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:max
# An RSA key restricted to PSS (id-RSASSA-PSS in the certificate), which
# the S/MIME Baseline Requirements do not allow.
leaf psskey psskey@example.org inter-rsa RSA-PSS rsa_keygen_bits:2048

printf 'Content-Type: text/plain; charset=us-ascii\n\nHello from OpenSSL: please pay invoice 1234, $100.\n' >content.txt

# sign OUT SIGNER ISSUER [cms OPTIONS...]: a message signed by SIGNER, its
# issuer in the CMS.
sign() {
	file=$1 signer=$2 issuer=$3
	shift 3
	addr=$("$OPENSSL" x509 -in "$signer.pem" -noout -email)
	"$OPENSSL" cms -sign -in content.txt -signer "$signer.pem" -inkey "$signer.key" -certfile "$issuer.pem" \
		-from "$addr" -to archive@certharvest.test -subject "OpenSSL $file" -out "$out/$file.eml" "$@"
}
# smime OUT SIGNER ISSUER [smime OPTIONS...]: the same with the PKCS #7
# command, whose types are the legacy application/x-pkcs7-*.
smime() {
	file=$1 signer=$2 issuer=$3
	shift 3
	addr=$("$OPENSSL" x509 -in "$signer.pem" -noout -email)
	"$OPENSSL" smime -sign -in content.txt -signer "$signer.pem" -inkey "$signer.key" -certfile "$issuer.pem" \
		-from "$addr" -to archive@certharvest.test -subject "OpenSSL $file" -out "$out/$file.eml" "$@"
}
pss="-keyopt rsa_padding_mode:pss"

# Accepted.
sign rsa-pkcs1-detached rsa inter-rsa
sign rsa-pkcs1-opaque rsa inter-rsa -nodetach
sign rsa-pkcs1-ber-opaque rsa inter-rsa -nodetach -stream
smime rsa-pkcs1-x-pkcs7-signature rsa inter-rsa
sign rsa-pss-detached rsa inter-rsa $pss
sign rsa-pss-opaque rsa inter-rsa $pss -nodetach
# (OpenSSL 3.0 cannot stream RSASSA-PSS, "illegal zero content", and
# -stream gives DER for a detached signature: the BER ones are opaque,
# PKCS #1 v1.5 and ECDSA.)
sign rsa-pss-x-pkcs7-signature rsa inter-rsa $pss
sed -i 's#application/pkcs7-signature#application/x-pkcs7-signature#g' "$out/rsa-pss-x-pkcs7-signature.eml"
sign rsa-pss-sha384-detached rsa inter-rsa $pss -md sha384 -keyopt rsa_pss_saltlen:digest
sign rsa-pss-sha512-opaque rsa inter-rsa $pss -md sha512 -nodetach
sign p256-detached p256 inter-ed
sign p384-detached p384 inter-ec -md sha384
sign p384-opaque p384 inter-ec -md sha384 -nodetach
sign p384-ber-opaque p384 inter-ec -md sha384 -nodetach -stream
sign p521-detached p521 inter-ec -md sha512
smime p521-x-pkcs7-mime p521 inter-ec -md sha512 -nodetach

# A dual-key sender: signed with the signing-only certificate, the
# encryption certificate added to the CMS beside the issuer (-certfile
# takes a file of several), as mail clients of dual-key PKIs send it.
cat inter-rsa.pem dual-enc.pem >dual-certfile.pem
sign dual-key-certfile dual-sign dual-certfile
cp dual-enc.pem "$out/dual-enc.pem"

# Refused: no certificate to encrypt to (cert_no_encryption).
sign signonly-rsa-detached signonly-rsa inter-rsa
sign signonly-p256-opaque signonly-p256 inter-ec -nodetach

# Refused: weak signatures and certificates.
sign weak-sha1 rsa inter-rsa -md sha1
sign weak-rsa-pss-sha1 rsa inter-rsa $pss -md sha1
sign weak-rsa-pss-salt rsa inter-rsa $pss -keyopt rsa_pss_saltlen:16
sign weak-rsa1024 rsa1024 inter-rsa
sign weak-sha1-cert sha1cert inter-rsa
sign weak-pss-cert psssalt inter-rsa
sign pss-key psskey inter-rsa

# Refused: altered after signing (the amount of the invoice).
for f in rsa-pss-detached p384-detached p521-detached p256-detached; do
	sed 's/\$100/$900/' "$out/$f.eml" >"$out/tampered-$f.eml"
done

# Ed25519: OpenSSL 3.0 and 3.1 refuse to sign CMS with it (RFC 8419 came
# in 3.2); the message is made where this openssl can.
if sign ed25519-detached ed25519 inter-ed -md sha512 2>ed25519.err; then
	echo "made ed25519-detached.eml"
else
	rm -f "$out/ed25519-detached.eml"
	echo "this openssl cannot sign CMS with Ed25519:" >&2
	cat ed25519.err >&2
fi

cp root.pem "$out/root.pem"
"$OPENSSL" version >"$out/openssl-version.txt"
