//go:build boringcrypto

package rsaverify

// boringCrypto is set when the program is built with Go+BoringCrypto, whose
// crypto/rsa verifies with BoringSSL: crypto/rsa answers every call then.
const boringCrypto = true
