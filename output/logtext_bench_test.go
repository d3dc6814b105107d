package output

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// storyRecords is the story of an accepted message, as verify tells it.
func storyRecords() []slog.Record {
	now := time.Now()
	rec := func(msg string, args ...any) slog.Record {
		r := slog.NewRecord(now, slog.LevelInfo, msg, 0)
		r.Add(args...)
		return r
	}
	return []slog.Record{
		rec("Message from scan,path=/var/mail/archive/bench-000000.eml", "bytes", 4775),
		rec("from=bench-000000@example.com", "message_id", "<111b6de4509679fa@example.com>"),
		rec("from=bench-000000@example.com,DKIM passed", "domain", "example.com", "selector", "s1", "algorithm", "rsa-sha256"),
		rec(`content-type=multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="----=_certharvest_signed_385cc22be6d5d9818e",content-description=None`),
		rec("content-type=text/plain; charset=utf-8,content-description=None"),
		rec("content-type=application/pkcs7-signature; name=smime.p7s,content-description=S/MIME Cryptographic Signature"),
		rec("filename=smime.p7s,bytes=2385", "form", "detached", "signed_bytes", 166),
		rec("Certificate: subject email_address=[bench-000000@example.com],not_valid_before=2026-01-01T00:00:00Z,not_valid_after=2028-01-01T00:00:00Z,signature=SHA256-RSA,key=RSA-2048,issuer={CN=certharvest test intermediate,O=certharvest tests}", "role", "signer"),
		rec("Certificate: subject email_address=[],not_valid_before=2025-01-01T00:00:00Z,not_valid_after=2030-01-01T00:00:00Z,signature=SHA256-RSA,key=RSA-2048,issuer={CN=certharvest test root,O=certharvest tests}", "role", "intermediate"),
		rec("CMS signature verified", "signer", "bench-000000@example.com", "serial", "5c8e0a7b3d2f"),
		rec("chain verified", "chain", "bench-000000@example.com <- certharvest test intermediate <- certharvest test root"),
		rec("certificate address matches From", "address", "bench-000000@example.com"),
		rec("written file bench-000000@example.com.crt,bytes=1334,ok=True"),
		rec("accepted: certificate stored for bench-000000@example.com", "reason", "ok", "action", "stored"),
	}
}

// BenchmarkLogStory is writing the story of an accepted message: as verify
// did before HandleStory (a handler with the id, each message after the
// first copied with its prefix, HandleBlock), and with HandleStory.
func BenchmarkLogStory(b *testing.B) {
	records := storyRecords()
	h := NewLogHandler(io.Discard, slog.LevelInfo)
	ctx := context.Background()
	b.Run("HandleBlock", func(b *testing.B) {
		b.ReportAllocs()
		rs := make([]slog.Record, len(records))
		for b.Loop() {
			copy(rs, records)
			hid := h.WithAttrs([]slog.Attr{slog.String("id", "ff62b5041d94")})
			for i := 1; i < len(rs); i++ {
				rs[i].Message = "| " + rs[i].Message
			}
			_ = hid.(*LogHandler).HandleBlock(ctx, rs)
		}
	})
	b.Run("HandleStory", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = h.HandleStory(ctx, "ff62b5041d94", "| ", records)
		}
	})
}
