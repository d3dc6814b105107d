package verify_test

import (
	"encoding/base64"
	"io"
	"log/slog"
)

func slogText(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
