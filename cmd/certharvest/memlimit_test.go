package main

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/certharvest/certharvest/ingest"
)

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// The default memory limit: four times the in-flight budget (eight
// messages at --max-size, 256 MiB at most) plus 64 MiB, plus 64 MiB with
// live inputs, and at most 3/4 of the memory available.
func TestDefaultMemoryLimit(t *testing.T) {
	tests := []struct {
		maxSize, inputs, available int64
		want                       int64
		from                       string
	}{
		{25 * mib, 0, 0, 864 * mib, "4 x 200MiB in flight + 64MiB"},
		{25 * mib, ingest.DefaultInputMemory, 0, 992 * mib, "4 x 200MiB in flight + 192MiB"},
		{25 * mib, 0, 16 * gib, 864 * mib, "4 x 200MiB in flight"},
		{1 * mib, 0, 0, 96 * mib, "4 x 8MiB in flight"},
		{300 * kib, 0, 0, 64*mib + 4*2400*kib, "4 x 2400KiB in flight"},
		{100 * mib, 0, 0, 1088 * mib, "4 x 256MiB in flight"}, // the budget's cap
		{25 * mib, 0, 1 * gib, 768 * mib, "3/4 of the 1GiB available"},
		{25 * mib, ingest.DefaultInputMemory, 512 * mib, 384 * mib, "3/4 of the 512MiB available"},
	}
	for _, tt := range tests {
		got, from := defaultMemoryLimit(tt.maxSize, tt.inputs, tt.available)
		if got != tt.want || !strings.Contains(from, tt.from) {
			t.Errorf("defaultMemoryLimit(%d, %d, %d) = %s (%s), want %s (%s)", tt.maxSize, tt.inputs, tt.available,
				formatSize(got), from, formatSize(tt.want), tt.from)
		}
	}
}

func TestParseMemoryLimit(t *testing.T) {
	for in, want := range map[string]int64{"auto": memoryLimitAuto, "off": memoryLimitOff, "0": memoryLimitOff,
		"512MiB": 512 * mib, "2GiB": 2 * gib, "1000000": 1000000} {
		if got, err := parseMemoryLimit(in); err != nil || got != want {
			t.Errorf("parseMemoryLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "lots", "1TB", "none"} {
		if _, err := parseMemoryLimit(in); err == nil {
			t.Errorf("parseMemoryLimit(%q) accepted", in)
		}
	}
}

// meminfo is a /proc/meminfo of a machine with total bytes of memory.
func meminfo(total int64) *fstest.MapFile {
	return &fstest.MapFile{Data: fmt.Appendf(nil, "MemTotal:       %d kB\nMemFree:         1000 kB\n", total>>10)}
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

// The memory available: the smallest limit of the process's cgroup and its
// ancestors, cgroup v2 or v1, found where /proc/self/mountinfo says the
// hierarchy is mounted, and the machine's memory when smaller.
func TestAvailableMemory(t *testing.T) {
	const (
		v2Mount = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
		hybrid  = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n" +
			"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" +
			"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n" +
			"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	)
	tests := []struct {
		name string
		fs   fstest.MapFS
		want int64
	}{
		{"systemd unit with MemoryMax=, its slice larger", fstest.MapFS{
			"proc/meminfo":        meminfo(16 * gib),
			"proc/self/cgroup":    file("0::/system.slice/certharvest.service\n"),
			"proc/self/mountinfo": file(v2Mount),
			"sys/fs/cgroup/system.slice/certharvest.service/memory.max": file("1073741824\n"),
			"sys/fs/cgroup/system.slice/memory.max":                     file("4294967296\n"),
		}, 1 * gib},
		{"the slice's limit is the smaller", fstest.MapFS{
			"proc/meminfo":        meminfo(16 * gib),
			"proc/self/cgroup":    file("0::/system.slice/certharvest.service\n"),
			"proc/self/mountinfo": file(v2Mount),
			"sys/fs/cgroup/system.slice/certharvest.service/memory.max": file("max\n"),
			"sys/fs/cgroup/system.slice/memory.max":                     file("536870912\n"),
		}, 512 * mib},
		{"no limit: the machine's memory", fstest.MapFS{
			"proc/meminfo":        meminfo(8 * gib),
			"proc/self/cgroup":    file("0::/user.slice/session-1.scope\n"),
			"proc/self/mountinfo": file(v2Mount),
			"sys/fs/cgroup/user.slice/session-1.scope/memory.max": file("max\n"),
		}, 8 * gib},
		{"a limit above the machine's memory", fstest.MapFS{
			"proc/meminfo":             meminfo(2 * gib),
			"proc/self/cgroup":         file("0::/\n"),
			"proc/self/mountinfo":      file(v2Mount),
			"sys/fs/cgroup/memory.max": file("8589934592\n"),
		}, 2 * gib},
		{"container with its own cgroup namespace", fstest.MapFS{
			"proc/self/cgroup":         file("0::/\n"),
			"proc/self/mountinfo":      file(v2Mount),
			"sys/fs/cgroup/memory.max": file("268435456\n"),
		}, 256 * mib},
		{"a container's hierarchy mounted at its own root", fstest.MapFS{
			"proc/self/cgroup":         file("0::/docker/abc\n"),
			"proc/self/mountinfo":      file("30 23 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
			"sys/fs/cgroup/memory.max": file("268435456\n"),
		}, 256 * mib},
		{"cgroup v1 beside an empty v2 hierarchy", fstest.MapFS{
			"proc/meminfo":        meminfo(16 * gib),
			"proc/self/cgroup":    file("4:memory:/process_api/8d32\n1:name=systemd:/\n0::/\n"),
			"proc/self/mountinfo": file(hybrid),
			"sys/fs/cgroup/memory/process_api/8d32/memory.limit_in_bytes": file("1610612736\n"),
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                  file("9223372036854771712\n"),
		}, 1536 * mib},
		{"cgroup v1 without a limit", fstest.MapFS{
			"proc/meminfo":        meminfo(16 * gib),
			"proc/self/cgroup":    file("4:memory:/\n0::/\n"),
			"proc/self/mountinfo": file(hybrid),
			"sys/fs/cgroup/memory/memory.limit_in_bytes": file("9223372036854771712\n"),
		}, 16 * gib},
		{"a mount point with a space", fstest.MapFS{
			"proc/self/cgroup":           file("0::/a\n"),
			"proc/self/mountinfo":        file(`30 23 0:26 / /run/my\040cgroup rw - cgroup2 cgroup2 rw` + "\n"),
			"run/my cgroup/a/memory.max": file("104857600\n"),
		}, 100 * mib},
		{"nothing to read (not Linux)", fstest.MapFS{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := availableMemory(tt.fs); got != tt.want {
				t.Errorf("availableMemory = %s, want %s", formatSize(got), formatSize(tt.want))
			}
		})
	}
}

var memLimitMetricRE = regexp.MustCompile(`(?m)^go_gc_gomemlimit_bytes (\S+)$`)

// serve sets the Go memory limit: the default, GOMEMLIMIT when set, and
// --memory-limit over both; as the runtime reports it (the Go collector's
// go_gc_gomemlimit_bytes) and as the start-up log says.
func TestServeMemoryLimit(t *testing.T) {
	def, _ := defaultMemoryLimit(25*mib, 0, availableMemory(os.DirFS("/")))
	tests := []struct {
		name string
		env  []string
		args []string
		want int64
	}{
		{"default", nil, nil, def},
		{"GOMEMLIMIT", []string{"GOMEMLIMIT=300MiB"}, nil, 300 * mib},
		{"--memory-limit over GOMEMLIMIT", []string{"GOMEMLIMIT=300MiB"}, []string{"--memory-limit", "200MiB"}, 200 * mib},
		{"off", nil, []string{"--memory-limit", "off"}, math.MaxInt64},
	}
	client := &http.Client{Timeout: 30 * time.Second}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServeEnv(t, t.TempDir(), tt.env, append([]string{"--metrics", "127.0.0.1:0"}, tt.args...)...)
			addr := s.listeningAddr(t, "metrics listening on ")
			code, _, body := lookupGet(t, client, "http://"+addr+"/metrics", "")
			m := memLimitMetricRE.FindSubmatch(body)
			if code != 200 || m == nil {
				t.Fatalf("/metrics: %d, no go_gc_gomemlimit_bytes\n%s", code, body)
			}
			got, err := strconv.ParseFloat(string(m[1]), 64)
			if err != nil || got != float64(tt.want) {
				t.Errorf("go_gc_gomemlimit_bytes = %s, want %d", m[1], tt.want)
			}
			if want := "memory_limit=" + describeMemoryLimit(tt.want); !strings.Contains(string(s.ownLog()), want) {
				t.Errorf("the start-up log lacks %s:\n%s", want, s.ownLog())
			}
			s.stop(t)
		})
	}
}
