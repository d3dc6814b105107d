# certharvest: see README.md.
GO ?= go
BIN := bin/certharvest
SAMPLE := testdata/sample
# The sample's certificates are checked at this time, so runs are reproducible.
SAMPLE_AT := 2026-06-01T00:00:00Z

.PHONY: all build install run test vet lint fmt-check bench sample clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/certharvest

# Install the binary where go install puts it: $(go env GOBIN), else
# $(go env GOPATH)/bin.
install:
	$(GO) install ./cmd/certharvest

# Scan the bundled sample corpus: no network, no configuration.
run: build
	rm -rf certs report.jsonl certharvest.log
	./$(BIN) scan --trust $(SAMPLE)/trust.pem --dkim-keys $(SAMPLE)/dkim-keys.txt \
		--at $(SAMPLE_AT) --certs ./certs --report ./report.jsonl --log ./certharvest.log $(SAMPLE)/messages

# -timeout: a package's tests take 4 minutes on a quiet 2-core machine and
# up to 10 on a loaded one; go test's default of 10 would kill them there.
test: fmt-check vet
	$(GO) test -race -count=1 -timeout 20m ./...

vet:
	$(GO) vet ./...

# staticcheck and deadcode, pinned; fetched through the Go module proxy on
# first use. staticcheck's default checks include U1000 (an unexported
# identifier nothing uses). deadcode adds the functions, exported ones too,
# that no command and no test can reach: the roots are every main package
# under ./... (cmd/ and the scripts/ programs the benchmarks build) and the
# tests. It reports for this GOOS only, and exits 0 whatever it finds: its
# output fails the target.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE := golang.org/x/tools/cmd/deadcode@v0.52.0
lint: vet
	$(GO) run $(STATICCHECK) ./...
	@out=$$($(GO) run $(DEADCODE) -test ./...) || exit 1; \
	if [ -n "$$out" ]; then echo "unreachable code (deadcode -test):"; echo "$$out"; exit 1; fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./verify/ ./output/

# Regenerate the sample corpus's messages, its cases and counts kept (new
# keys and certificates: commit the result).
sample:
	$(GO) run ./scripts/gencorpus -cases $(SAMPLE)/expected.tsv -out $(SAMPLE)

clean:
	rm -rf bin certs report.jsonl certharvest.log
