// Package relay is the HTTP relaying the test endpoints in front of moto share (the fault
// proxy, the limits-faithful endpoint): forward a request as the client signed it, and
// write the answer back.
package relay

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// hopByHop are the headers that belong to one connection, not to the request.
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Transfer-Encoding": true,
	"Te": true, "Trailer": true, "Upgrade": true, "Content-Length": true,
}

// Forward sends r, with body, to target through client and reads the whole answer.
func Forward(ctx context.Context, client *http.Client, target *url.URL, r *http.Request, body []byte) (*http.Response, []byte, error) {
	u := *target
	u.Path = strings.TrimSuffix(target.Path, "/") + r.URL.Path
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	copyHeader(out.Header, r.Header)
	out.Host = r.Host // the SigV4 signature covers the host the client used
	resp, err := client.Do(out)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, b, nil
}

// Reply writes a forwarded answer to w.
func Reply(w http.ResponseWriter, resp *http.Response, body []byte) {
	copyHeader(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		if !hopByHop[http.CanonicalHeaderKey(k)] {
			dst[k] = append(dst[k], vs...)
		}
	}
}
