package cputime

import (
	"runtime"
	"testing"
)

func TestProcessAdvances(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no CPU time on", runtime.GOOS)
	}
	start := Process()
	x := 0
	for i := 0; Process()-start < 2e6 && i < 1e9; i++ {
		x += i
	}
	if Process()-start < 2e6 {
		t.Fatalf("CPU time did not advance by 2 ms in a busy loop (x=%d)", x)
	}
}
