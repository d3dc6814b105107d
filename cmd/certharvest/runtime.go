package main

import (
	"os"
	"runtime"
	"runtime/debug"
)

// syncThreads is how many threads beyond the cores scan and serve let run
// Go code (GOMAXPROCS). A goroutine in fsync or syncfs (the report's sync
// in serve's commit loop, a group commit of certificates) keeps its
// thread's place in the scheduler for most of the sync: the runtime takes
// it back only after 20 µs to 10 ms, which is often longer than the sync.
// With GOMAXPROCS at the cores, those syncs stop the verifications; two
// more places let the verifications use the cores meanwhile, and --workers
// still bounds them. (scan of 2,000 messages on 2 cores: 150% of the CPU
// and 1,950 messages/s without them, 170% and 2,270/s with them.)
const syncThreads = 2

// addSyncThreads sets GOMAXPROCS to n more than its default (the cores, or
// the container's CPU limit), unless the GOMAXPROCS environment variable
// sets it.
func addSyncThreads(n int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.SetDefaultGOMAXPROCS()
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + n)
}

// setLazyGC sets the garbage collector's target to 400% unless the GOGC
// environment variable sets one. The pipeline allocates fast and keeps
// little (the messages in flight, a few MB): collecting when the heap
// reaches five times that, rather than twice, saves a tenth to a fifth of
// the CPU for a few more megabytes.
func setLazyGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}
