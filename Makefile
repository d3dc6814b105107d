# certharvest: see README.md.
GO ?= go
BIN := bin/certharvest
SAMPLE := testdata/sample
# The sample's certificates are checked at this time, so runs are reproducible.
SAMPLE_AT := 2026-06-01T00:00:00Z

.PHONY: all build run test vet lint fmt-check bench sample clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/certharvest

# Scan the bundled sample corpus: no network, no configuration.
run: build
	rm -rf certs report.jsonl
	./$(BIN) scan --trust $(SAMPLE)/trust.pem --dkim-keys $(SAMPLE)/dkim-keys.txt \
		--at $(SAMPLE_AT) --certs ./certs --report ./report.jsonl --log ./certharvest.log $(SAMPLE)/messages

test: fmt-check vet
	$(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...

# staticcheck, pinned; fetched through the Go module proxy on first use.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint: vet
	$(GO) run $(STATICCHECK) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./verify/ ./output/

# Regenerate the sample corpus (new keys: commit the result).
sample:
	rm -rf $(SAMPLE)
	$(GO) run ./scripts/gencorpus -out $(SAMPLE)

clean:
	rm -rf bin certs report.jsonl certharvest.log
