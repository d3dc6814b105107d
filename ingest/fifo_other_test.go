//go:build !linux

package ingest

import "errors"

func mkfifo(string) error { return errors.ErrUnsupported }
