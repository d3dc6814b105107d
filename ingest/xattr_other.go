//go:build !linux

package ingest

import (
	"errors"
	"os"
)

var errNoXattr = errors.New("extended attributes are not used on this system")

// setXattr is not used outside Linux: the context goes in meta/ files.
func setXattr(*os.File, string, []byte) error { return errNoXattr }

func getXattr(string, string) ([]byte, error) { return nil, errNoXattr }
