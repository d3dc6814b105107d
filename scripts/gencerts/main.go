// Command gencerts writes a certificate folder of N certificates, for
// measuring export and list on a large store.
//
//	go run ./scripts/gencerts -n 100000 -out /tmp/certs100k
//
// Every certificate is a leaf for its own address (user00000042@example.org
// and so on, spread over ten domains), with a serial of its own, issued by
// one test CA to one ECDSA P-256 key: what differs between certificates is
// what export reads (the address, the serial, the signature), and one key
// for all keeps the script fast (about 30 µs a certificate on each core).
// The files are written as the folder store lays them out,
// <address>.crt in PEM, without the store's fsyncs: a benchmark's folder,
// not a durable one.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

func main() {
	n := flag.Int("n", 100000, "number of certificates")
	out := flag.String("out", "", "folder to write (created)")
	flag.Parse()
	if *out == "" || *n < 1 {
		log.Fatal("usage: gencerts -n N -out DIR")
	}
	if err := run(*n, *out); err != nil {
		log.Fatal(err)
	}
}

func run(n int, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	notBefore := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "gencerts CA"},
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	workers := runtime.NumCPU()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				addr := fmt.Sprintf("user%08d@example%d.org", i, i%10)
				tmpl := &x509.Certificate{
					SerialNumber:   big.NewInt(int64(i) + 2),
					Subject:        pkix.Name{CommonName: addr},
					EmailAddresses: []string{addr},
					NotBefore:      notBefore,
					NotAfter:       notBefore.AddDate(1, 0, i%365),
					KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
					ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection},
				}
				der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &leafKey.PublicKey, caKey)
				if err == nil {
					data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
					err = os.WriteFile(filepath.Join(out, addr+".crt"), data, 0o644)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
