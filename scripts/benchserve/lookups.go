package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// timeLookups sends n GET requests for addresses drawn from addrs to the
// lookup API at base (…/certs/), conc at once, each with a connection
// kept alive, and returns each one's latency: from the request sent to the
// last byte of the answer, which must be 200.
func timeLookups(base, token string, addrs []string, n, conc int) ([]time.Duration, error) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	var (
		mu   sync.Mutex
		lat  = make([]time.Duration, 0, n)
		errs []error
		wg   sync.WaitGroup
	)
	next := make(chan string)
	for range conc {
		wg.Go(func() {
			for addr := range next {
				req, _ := http.NewRequest("GET", base+addr, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				start := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("lookup %s: %s", addr, resp.Status)
					}
				}
				d := time.Since(start)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		next <- addrs[rand.IntN(len(addrs))]
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("%d of %d lookups failed, the first: %w", len(errs), n, errs[0])
	}
	return lat, nil
}
