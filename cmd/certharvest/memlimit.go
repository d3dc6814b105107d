package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/certharvest/certharvest/internal/engine"
)

// The Go memory limit (runtime/debug.SetMemoryLimit, the GOMEMLIMIT
// environment variable) is a soft cap on the memory the Go runtime uses: as
// the heap nears it, the garbage collector runs sooner than GOGC says.
// scan and serve run at GOGC=400 (setLazyGC), which lets the heap grow to
// five times what is live: harmless for the usual few MB of messages in
// flight, but for 200 MiB of large messages in flight (and what verifying
// them allocates) it would be gigabytes, enough for the kernel to kill the
// service. The limit keeps GOGC=400's speed where memory is plentiful and
// bounds the heap where it is not. It is soft: a live heap larger than the
// limit makes the collector work harder (at most half the CPU, the
// runtime's own bound), never fail.
const (
	// memoryLimitBase is what the default limit allows besides the
	// messages: the runtime, the caches (chains, DKIM keys), the
	// connections, the report and the log. serve holds 30 to 50 MB of RSS
	// at full speed (docs/PERFORMANCE.md, the soaks).
	memoryLimitBase = 64 << 20
	// memoryLimitPerInFlight is the default limit's bytes per byte of the
	// in-flight budget (inFlightBudget): the message itself, and up to
	// three times its size that verifying it allocates in passing
	// (measured on a 24 MiB signed message: 2 times with CRLF lines, 3
	// times with bare LF lines, which are converted).
	memoryLimitPerInFlight = 4
	// memoryLimitShareNum / memoryLimitShareDen is the largest share of
	// the memory available (the cgroup's memory.max, else the machine's)
	// that the default limit takes: the rest is for what the Go runtime
	// does not count, such as the kernel's socket buffers and page tables,
	// which a cgroup charges too.
	memoryLimitShareNum, memoryLimitShareDen = 3, 4
)

// --memory-limit values besides a size.
const (
	memoryLimitAuto = 0             // GOMEMLIMIT if set, else the default
	memoryLimitOff  = math.MaxInt64 // no limit (debug.SetMemoryLimit's)
)

// memoryLimitVar defines --memory-limit.
func memoryLimitVar(fs *pflag.FlagSet, p *parsedFlag[int64]) {
	*p = newParsedFlag("auto", parseMemoryLimit)
	fs.Var(p, "memory-limit", "Go's soft heap limit: `bytes`, off, or auto (GOMEMLIMIT, else sized from the budgets)")
}

// parseMemoryLimit parses --memory-limit: auto, off (or 0), or a size.
func parseMemoryLimit(s string) (int64, error) {
	switch s {
	case "auto", "":
		return memoryLimitAuto, nil
	case "off", "0":
		return memoryLimitOff, nil
	}
	n, err := parseSize(s)
	if err != nil {
		return 0, errors.New("want auto, off, or a number of bytes like 1GiB")
	}
	return n, nil
}

// applyMemoryLimit sets the Go memory limit from --memory-limit's value v
// and returns it, with where it comes from, for the start-up log. With
// auto, a GOMEMLIMIT environment variable (which the runtime applied at
// start) stands; otherwise the default is computed from the in-flight
// budget of maxSize, inputs bytes for the live inputs, and the memory
// available (sys).
func applyMemoryLimit(v, maxSize, inputs int64, sys fs.FS) (limit int64, from string) {
	switch {
	case v == memoryLimitOff:
		debug.SetMemoryLimit(math.MaxInt64)
		return math.MaxInt64, "--memory-limit off"
	case v > 0:
		debug.SetMemoryLimit(v)
		return v, "--memory-limit"
	case os.Getenv("GOMEMLIMIT") != "":
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	limit, from = defaultMemoryLimit(maxSize, inputs, availableMemory(sys))
	debug.SetMemoryLimit(limit)
	return limit, from
}

// defaultMemoryLimit is the memory limit for messages of at most maxSize
// bytes, inputs bytes of the live inputs' buffers, and available bytes of
// memory (0: unknown): memoryLimitPerInFlight times the in-flight budget,
// plus memoryLimitBase and inputs, at most 3/4 of what is available.
func defaultMemoryLimit(maxSize, inputs, available int64) (limit int64, from string) {
	budget := engine.InFlightBytes(maxSize)
	limit = memoryLimitPerInFlight*budget + memoryLimitBase + inputs
	from = fmt.Sprintf("default: %d x %s in flight + %s", memoryLimitPerInFlight, formatSize(budget), formatSize(memoryLimitBase+inputs))
	if share := available / memoryLimitShareDen * memoryLimitShareNum; available > 0 && share < limit {
		limit = share
		from = fmt.Sprintf("default: %d/%d of the %s available", memoryLimitShareNum, memoryLimitShareDen, formatSize(available))
	}
	return limit, from
}

// describeMemoryLimit writes a memory limit for the log.
func describeMemoryLimit(n int64) string {
	if n == math.MaxInt64 {
		return "off"
	}
	return formatSize(n)
}

// formatSize writes n bytes as parseSize reads them: in the largest binary
// unit that divides it.
func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

// availableMemory returns the memory this process may use, in bytes: the
// smallest memory limit of its cgroup and the cgroup's ancestors
// (memory.max in cgroup v2, memory.limit_in_bytes in v1), or the machine's
// memory when smaller or when there is none; 0 when it cannot tell (not
// Linux). sys is the root of the file system ("/"), so that a test can
// give another.
func availableMemory(sys fs.FS) int64 {
	avail := machineMemory(sys)
	if c := cgroupMemoryLimit(sys); c > 0 && (avail == 0 || c < avail) {
		avail = c
	}
	return avail
}

// machineMemory reads MemTotal from /proc/meminfo; 0 when it cannot.
func machineMemory(sys fs.FS) int64 {
	data, err := fs.ReadFile(sys, "proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil || kb <= 0 {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// cgroupMemoryLimit returns the smallest memory limit set on the process's
// cgroup or its ancestors, 0 for none. It finds the cgroup as the kernel
// names it in /proc/self/cgroup (the "0::" line in cgroup v2, the memory
// controller's in v1) under the mount of that hierarchy (from
// /proc/self/mountinfo: inside a container with its own cgroup namespace,
// the path is "/" and the mount is the container's cgroup), and reads each
// folder's limit up to the mount's root. A service under systemd has no
// namespace of its own: its cgroup is /system.slice/<unit>.service, whose
// memory.max is the unit's MemoryMax=, and a slice's limit above applies too.
func cgroupMemoryLimit(sys fs.FS) int64 {
	cgroups, err := fs.ReadFile(sys, "proc/self/cgroup")
	if err != nil {
		return 0
	}
	mounts, err := fs.ReadFile(sys, "proc/self/mountinfo")
	if err != nil {
		return 0
	}
	v2Path, v1Path := "", ""
	for line := range strings.Lines(string(cgroups)) {
		parts := strings.SplitN(strings.TrimRight(line, "\n"), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2Path = parts[2]
		case controllerListed(parts[1], "memory"):
			v1Path = parts[2]
		}
	}
	// A v1 memory controller, where there is one, holds the limits (a
	// hybrid system's v2 hierarchy has no memory controller).
	if v1Path != "" {
		if root, mnt, ok := cgroupMount(mounts, "cgroup", "memory"); ok {
			return cgroupLimitUp(sys, mnt, relativeCgroup(v1Path, root), "memory.limit_in_bytes")
		}
	}
	if v2Path != "" {
		if root, mnt, ok := cgroupMount(mounts, "cgroup2", ""); ok {
			return cgroupLimitUp(sys, mnt, relativeCgroup(v2Path, root), "memory.max")
		}
	}
	return 0
}

// controllerListed reports whether the comma-separated list holds c.
func controllerListed(list, c string) bool {
	for l := range strings.SplitSeq(list, ",") {
		if l == c {
			return true
		}
	}
	return false
}

// cgroupMount finds in mountinfo (proc(5)) the mount of file system type
// fsType, with super options holding option when not "", and returns the
// root of the hierarchy it shows and its mount point.
func cgroupMount(mountinfo []byte, fsType, option string) (root, mountPoint string, ok bool) {
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// ID parent major:minor root mount-point options [optional...] - type source super-options
		pre, post, found := strings.Cut(sc.Text(), " - ")
		if !found {
			continue
		}
		f, p := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(p) < 3 || p[0] != fsType {
			continue
		}
		if option != "" && !controllerListed(p[2], option) {
			continue
		}
		return unescapeMountinfo(f[3]), unescapeMountinfo(f[4]), true
	}
	return "", "", false
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// relativeCgroup is the cgroup path p below the mount's root.
func relativeCgroup(p, root string) string {
	if rel, ok := strings.CutPrefix(p, root); ok && (root == "/" || rel == "" || rel[0] == '/') {
		return rel
	}
	return p
}

// cgroupLimitUp reads file in the cgroup folder mountPoint/rel and each
// of its parents up to mountPoint, and returns the smallest limit found;
// 0 for none. "max", and v1's near-2^63 "unlimited", are no limit.
func cgroupLimitUp(sys fs.FS, mountPoint, rel, file string) int64 {
	base := strings.TrimPrefix(path.Clean(mountPoint), "/")
	dir := path.Clean("/" + rel)
	var limit int64
	for {
		p := strings.TrimPrefix(path.Join(base, dir, file), "/")
		if data, err := fs.ReadFile(sys, p); err == nil {
			s := strings.TrimSpace(string(data))
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && n < math.MaxInt64/2 && (limit == 0 || n < limit) {
				limit = n
			}
		}
		if dir == "/" {
			return limit
		}
		dir = path.Dir(dir)
	}
}
