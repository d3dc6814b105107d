package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

var shared Shared

func TestMain(m *testing.M) { os.Exit(shared.Run(m)) }

// query runs sql on url and returns the first column of the first row of its last
// statement.
func query(t *testing.T, url, sql string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	results, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return "", err
	}
	if res := results[len(results)-1]; len(res.Rows) > 0 {
		return string(res.Rows[0][0]), nil
	}
	return "", nil
}

// TestStopStart: a private server answers, refuses connections once
// stopped, and answers again once started, with its data (fsync on).
func TestStopStart(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Durable: true})
	if _, err := query(t, s.URL(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('here')"); err != nil {
		t.Fatal(err)
	}
	if v, _ := query(t, s.URL(), "SHOW fsync"); v != "on" {
		t.Errorf("fsync = %q, want on (Durable)", v)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := query(t, s.URL(), "SELECT 1"); err == nil {
		t.Fatal("a stopped server answered")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if v, err := query(t, s.URL(), "SELECT v FROM kept"); err != nil || v != "here" {
		t.Fatalf("after a restart: %q, %v", v, err)
	}
}

// TestSharedSchemas: two schemas of the shared server keep tables of one
// name apart, and the shared server is fast (fsync off).
func TestSharedSchemas(t *testing.T) {
	t.Parallel()
	a, b := shared.Schema(t), shared.Schema(t)
	for _, u := range []string{a, b} {
		if _, err := query(t, u, "CREATE TABLE same (v int)"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := query(t, a, "INSERT INTO same VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if v, _ := query(t, b, "SELECT count(*) FROM same"); v != "0" {
		t.Errorf("schema b sees %s rows of schema a's table", v)
	}
	if v, _ := query(t, a, "SHOW fsync"); v != "off" {
		t.Errorf("fsync = %q, want off", v)
	}
}
