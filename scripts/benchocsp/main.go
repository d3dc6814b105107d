// Command benchocsp is the OCSP responder and CRL server of scan's
// benchmark with --revocation (scripts/bench-scan.sh, REVOCATION=soft):
// internal/ocsptest on a fixed address, for the CAs of a corpus that
// scripts/gencorpus -revocation made, answering "good" for every
// certificate, valid from an hour before the corpus's verification time
// (testcorpus.At) to a week after.
//
//	go run ./scripts/benchocsp -cas /tmp/bench-rev/revocation-cas.pem -listen 127.0.0.1:8788
//
// It runs until SIGINT or SIGTERM, and then says how many requests it
// answered.
package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/certharvest/certharvest/internal/ocsptest"
	"github.com/certharvest/certharvest/internal/testcorpus"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("benchocsp: ")
	casFile := flag.String("cas", "", "revocation-cas.pem of a corpus made with gencorpus -revocation (required)")
	listen := flag.String("listen", "127.0.0.1:8788", "address to listen on: the host and port of gencorpus -revocation's URL")
	flag.Parse()
	if *casFile == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	cas, err := readCAs(*casFile)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := ocsptest.StartAt(*listen, func() time.Time { return testcorpus.At }, cas...)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("answering for %d CAs at %s", len(cas), srv.URL)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	srv.Close()
	log.Printf("answered %d OCSP and %d CRL requests", srv.OCSPHits(), srv.CRLHits())
}

// readCAs reads the CAs of revocation-cas.pem: certificate, then key, for
// the root ("root") and the intermediate ("inter").
func readCAs(path string) ([]ocsptest.CA, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cas []ocsptest.CA
	names := []string{"root", "inter"}
	for rest := data; len(cas) < len(names); {
		var certBlock, keyBlock *pem.Block
		certBlock, rest = pem.Decode(rest)
		keyBlock, rest = pem.Decode(rest)
		if certBlock == nil || keyBlock == nil {
			return nil, errors.New(path + ": want a certificate and a key for the root, then the intermediate")
		}
		cert, err := x509.ParseCertificate(certBlock.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		key, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: a key that cannot sign", path)
		}
		cas = append(cas, ocsptest.CA{Name: names[len(cas)], Cert: cert, Key: signer})
	}
	return cas, nil
}
