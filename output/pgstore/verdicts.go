package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/certharvest/certharvest/output"
)

// DefaultVerdictBatch is how many verdicts Verdicts gathers before it
// writes them without waiting for Sync: the engine's batch (512), so that a
// serve's batch is one transaction.
const DefaultVerdictBatch = 512

// Verdicts writes report lines as rows of the table verdicts: an
// engine.Report, like output.Report. Write gathers; Sync writes what was
// gathered in one transaction, one row per message id (a message already
// there keeps its row: ON CONFLICT DO NOTHING), so writing the same lines
// again, after a failure or a crash, adds nothing. It is safe for
// concurrent use.
//
// Its lines are the JSON-lines report's, byte for byte, in the column line
// (as jsonb, which orders a line's members its own way), apart from what
// jsonb cannot hold: a \u0000 in a string becomes \ufffd.
type Verdicts struct {
	store *Store
	mu    sync.Mutex
	lines []string // gathered, not yet written
}

// Verdicts returns the writer of the store's verdict rows.
func (s *Store) Verdicts() *Verdicts { return &Verdicts{store: s} }

// Write adds one record. It is written by the next Sync, or before, once
// DefaultVerdictBatch are gathered; an error then means the record was not
// taken, and the ones gathered before are kept for the next Sync.
func (v *Verdicts) Write(rec *output.Record) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encoding report line: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.lines) >= DefaultVerdictBatch {
		if err := v.flushLocked(context.Background()); err != nil {
			return err
		}
	}
	v.lines = append(v.lines, string(jsonbSafe(line)))
	return nil
}

// Sync writes the gathered records in one transaction, and returns once it
// has committed. On an error they are kept, for the next Sync.
func (v *Verdicts) Sync() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.flushLocked(context.Background())
}

// insertVerdicts inserts lines ($1, text[] of report lines) into verdicts,
// each member in its column and the whole line in line. Each line is
// parsed once, as $1 is cast to jsonb[]: a LATERAL (SELECT t::jsonb) is
// pulled up by the planner, which then parses the text once for each of
// the 25 references to it (20 times the server's CPU per row).
const insertVerdicts = `INSERT INTO verdicts (id, time, source, path, message_id, envelope_from,
	envelope_to, remote_addr, context, from_address, outcome, reason, detail, action,
	dkim_domain, dkim_selector, cert_sha256, cert_file, verified_at, duration_ms, line)
SELECT l->>'id', (l->>'time')::timestamptz, l->>'source', l->>'path', l->>'message_id',
	l->>'envelope_from',
	CASE WHEN l ? 'envelope_to' THEN ARRAY(SELECT jsonb_array_elements_text(l->'envelope_to')) END,
	l->>'remote_addr', l->'context', l->>'from', l->>'outcome', l->>'reason', l->>'detail',
	l->>'action', l->'dkim'->>'domain', l->'dkim'->>'selector', l->'cert'->>'sha256',
	l->>'cert_file', (l->>'verified_at')::timestamptz, (l->>'duration_ms')::double precision, l
FROM unnest($1::jsonb[]) AS j(l)
ON CONFLICT (id) DO NOTHING`

func (v *Verdicts) flushLocked(ctx context.Context) error {
	if len(v.lines) == 0 {
		return nil
	}
	s := v.store
	// One statement: its own transaction, committed before Exec returns.
	err := s.do(ctx, func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, insertVerdicts, v.lines)
		return err
	})
	if err != nil {
		return fmt.Errorf("writing verdicts: %w", err)
	}
	v.lines = v.lines[:0]
	return nil
}

// jsonbSafe replaces each \u0000 escape of a JSON text by \ufffd: jsonb
// refuses it (PostgreSQL's text holds no NUL), and a header or context the
// sender chose may hold one.
func jsonbSafe(line []byte) []byte {
	if !bytes.Contains(line, []byte(`\u0000`)) {
		return line
	}
	out := make([]byte, 0, len(line))
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c != '\\' || i+1 >= len(line) {
			out = append(out, c)
			continue
		}
		// An escape: its backslash and the next byte go together, so an
		// escaped backslash followed by "u0000" is left alone.
		if bytes.HasPrefix(line[i+1:], []byte("u0000")) {
			out = append(out, `\ufffd`...)
			i += 5
			continue
		}
		out = append(out, c, line[i+1])
		i++
	}
	return out
}

// Report is what the engine writes verdicts to: output.Report, Verdicts
// (engine.Report's methods).
type Report interface {
	Write(rec *output.Record) error
	Sync() error
}

// Tee returns a Report that writes each record to every one of reports, in
// order, and syncs them in order: the JSON-lines file and the verdict rows,
// say. A record that one of them did not take is not given again to those
// before it that took it, when the engine writes it again: each takes each
// record once (Verdicts would take it twice harmlessly; a file would not).
func Tee(reports ...Report) Report { return &tee{reports: reports} }

type tee struct {
	reports []Report
	mu      sync.Mutex
	// pending is a record that reports[:next] took and reports[next] did
	// not: when it is written again, it goes on from next.
	pending *output.Record
	next    int
}

func (t *tee) Write(rec *output.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	start := 0
	if rec == t.pending {
		start = t.next
	}
	t.pending = nil
	for i := start; i < len(t.reports); i++ {
		if err := t.reports[i].Write(rec); err != nil {
			t.pending, t.next = rec, i
			return err
		}
	}
	return nil
}

func (t *tee) Sync() error {
	for _, r := range t.reports {
		if err := r.Sync(); err != nil {
			return err
		}
	}
	return nil
}
