package metrics

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certharvest/certharvest/ingest/maildir"
)

// The oldest message's age is found by reading new/ at most this often, and
// at most this many entries of it.
const (
	spoolAgeCache   = 5 * time.Second
	spoolAgeEntries = 100_000
)

// spoolCollector reports the spool's backlog and the age of its oldest
// message. The age is computed when scraped, from a listing of new/ that
// needs no system call per Maildir-named file (maildir.Spool.OldestNew); the
// oldest delivery time found is kept for spoolAgeCache, so that scrapes in
// quick succession (several Prometheus servers, or anyone who can reach
// the listener) do not read the folder again. Nothing is added to the
// per-message path.
type spoolCollector struct {
	watcher *maildir.Watcher
	spool   *maildir.Spool
	log     *slog.Logger
	now     func() time.Time

	messages, age                            *prometheus.Desc
	archiveBytes, archiveMessages, evictions *prometheus.Desc

	mu     sync.Mutex
	listed time.Time // when oldest was found
	oldest time.Time // zero: new/ was empty
}

// newSpoolCollector returns the collector of the spool's gauges and
// counters: its backlog and oldest message (new/), its archive (cur/).
func newSpoolCollector(w *maildir.Watcher, spool *maildir.Spool, log *slog.Logger, now func() time.Time) *spoolCollector {
	return &spoolCollector{
		watcher: w, spool: spool, log: log, now: now,
		messages: prometheus.NewDesc("certharvest_spool_messages",
			"Messages in the spool's new/ not yet reported and archived (the watcher's backlog, retries included).", nil, nil),
		age: prometheus.NewDesc("certharvest_spool_oldest_message_age_seconds",
			"Age of the oldest message waiting in new/, from its delivery time (0 when none waits).", nil, nil),
		archiveBytes: prometheus.NewDesc("certharvest_spool_archive_bytes",
			"Disk space of the messages in the spool's archive, cur/, by verdict (accepted, rejected): as of its last sweep, and the moves and removals since.", []string{"verdict"}, nil),
		archiveMessages: prometheus.NewDesc("certharvest_spool_archive_messages",
			"Messages in the spool's archive, cur/, by verdict (accepted, rejected).", []string{"verdict"}, nil),
		evictions: prometheus.NewDesc("certharvest_spool_archive_evictions_total",
			"Messages removed from the spool's archive by its retention policy, by cause: age (--keep-rejected, --keep-accepted), size (--archive-max-size), pressure (the disk short of room for new mail).", []string{"cause"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.messages
	ch <- c.age
	ch <- c.archiveBytes
	ch <- c.archiveMessages
	ch <- c.evictions
}

// Collect implements prometheus.Collector.
func (c *spoolCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(c.watcher.Backlog()))
	// Kept by the spool as it goes: no listing of cur/ here.
	archive := c.spool.ArchiveStats()
	for verdict, n := range map[string]maildir.ArchiveCount{"accepted": archive.Accepted, "rejected": archive.Rejected} {
		ch <- prometheus.MustNewConstMetric(c.archiveBytes, prometheus.GaugeValue, float64(n.Bytes), verdict)
		ch <- prometheus.MustNewConstMetric(c.archiveMessages, prometheus.GaugeValue, float64(n.Messages), verdict)
	}
	for cause, n := range archive.Evicted {
		ch <- prometheus.MustNewConstMetric(c.evictions, prometheus.CounterValue, float64(n), maildir.EvictCause(cause).String())
	}
	now := c.now()
	c.mu.Lock()
	if c.listed.IsZero() || now.Sub(c.listed) >= spoolAgeCache || now.Before(c.listed) {
		oldest, complete, err := c.spool.OldestNew(spoolAgeEntries)
		if err != nil {
			c.mu.Unlock()
			c.log.Warn("metrics: reading the spool's new/ failed", "error", err)
			ch <- prometheus.NewInvalidMetric(c.age, err)
			return
		}
		if !complete {
			c.log.Debug(fmt.Sprintf("metrics: new/ has more than %d entries: the oldest message's age is that of the first %d listed", spoolAgeEntries, spoolAgeEntries))
		}
		c.listed, c.oldest = now, oldest
	}
	oldest := c.oldest
	c.mu.Unlock()
	age := 0.0
	if !oldest.IsZero() {
		age = max(now.Sub(oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
}
