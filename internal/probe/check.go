package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

// maxBody is how much of an HTTP probe's response is read, as the kubelet.
const maxBody = 10 << 10

// userAgent names the prober as the kubelet's does ("kube-probe/1.32"), so
// that a server telling probes apart by the "kube-probe/" prefix still
// does.
const userAgent = "kube-probe/pod-runner"

// Check runs the probe once, bounded by its timeout: nil is a success.
func (p *Prober) Check(ctx context.Context, pr *planpb.Probe) error {
	timeout := schedule(pr).timeout
	switch a := pr.GetAction().(type) {
	case *planpb.Probe_Exec:
		if p.Exec == nil {
			return errors.New("exec probes cannot run here")
		}
		return p.Exec(ctx, a.Exec.GetCommand(), timeout)
	case *planpb.Probe_HttpGet:
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return p.httpGet(ctx, a.HttpGet)
	case *planpb.Probe_TcpSocket:
		d := net.Dialer{Timeout: timeout}
		conn, err := d.DialContext(ctx, "tcp", p.address(a.TcpSocket.GetHost(), a.TcpSocket.GetPort()))
		if err != nil {
			return err
		}
		return conn.Close()
	case *planpb.Probe_Grpc:
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return p.grpc(ctx, a.Grpc)
	default:
		return errors.New("the probe has no action")
	}
}

func (p *Prober) address(host string, port int32) string {
	if host == "" {
		host = p.Host
	}
	if host == "" {
		host = DefaultHost
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// httpGet is the kubelet's HTTP probe: a GET with the probe's headers (and
// its User-Agent and Accept unless they set them), no keep-alive, no proxy,
// HTTPS without verifying the certificate; redirects followed on the same
// host only (one to another host ends the probe with that 3xx); a status
// from 200 to 399 is a success.
func (p *Prober) httpGet(ctx context.Context, a *planpb.HTTPGetAction) error {
	scheme := strings.ToLower(a.GetScheme())
	if scheme == "" {
		scheme = "http"
	}
	path := a.GetPath()
	if path == "" {
		path = "/"
	}
	u, err := url.Parse(path)
	if err != nil {
		u = &url.URL{Path: path}
	}
	u.Scheme, u.Host = scheme, p.address(a.GetHost(), a.GetPort())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("HTTP probe request: %w", err)
	}
	for _, h := range a.GetHeaders() {
		req.Header.Add(h.GetName(), h.GetValue())
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", userAgent)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "*/*")
	}
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
	}
	// No proxy (the Transport's Proxy is nil), and no certificate
	// verified, as the kubelet's probes.
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode >= http.StatusOK && resp.StatusCode < http.StatusBadRequest {
		return nil
	}
	return fmt.Errorf("HTTP probe failed with statuscode: %d%s", resp.StatusCode, bodyNote(body))
}

func bodyNote(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return ": " + s
}

// grpc is the kubelet's gRPC probe: grpc.health.v1.Health/Check for the
// probe's service over HTTP/2 without TLS; SERVING is a success. The call
// is made with net/http (unencrypted HTTP/2) and the health service's two
// one-field messages encoded by hand, rather than linking a gRPC client
// into the supervisor for one call.
func (p *Prober) grpc(ctx context.Context, a *planpb.GRPCAction) error {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protocols, DisableKeepAlives: true}}

	var msg []byte
	if svc := a.GetService(); svc != "" {
		msg = protowire.AppendTag(msg, 1, protowire.BytesType)
		msg = protowire.AppendString(msg, svc)
	}
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	frame = append(frame, msg...)

	u := url.URL{Scheme: "http", Host: p.address("", a.GetPort()), Path: "/grpc.health.v1.Health/Check"}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(frame))
	if err != nil {
		return fmt.Errorf("gRPC probe request: %w", err)
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("gRPC probe: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("gRPC probe: read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("gRPC probe: HTTP status %d", resp.StatusCode)
	}
	// A call that fails may answer with headers only (Trailers-Only).
	status, message := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	if status == "" {
		status, message = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	switch status {
	case "0":
	case "12": // Unimplemented
		return errors.New("this server does not implement the grpc health protocol (grpc.health.v1.Health)")
	case "":
		return errors.New("gRPC probe: the answer has no grpc-status")
	default:
		return fmt.Errorf("health rpc probe failed: rpc error: code = %s desc = %s", status, message)
	}
	serving, err := servingStatus(body)
	if err != nil {
		return fmt.Errorf("gRPC probe: %w", err)
	}
	if serving != 1 {
		return fmt.Errorf("service unhealthy (responded with %q)", healthStatusName(serving))
	}
	return nil
}

// servingStatus reads HealthCheckResponse.status from one gRPC frame.
func servingStatus(body []byte) (uint64, error) {
	if len(body) < 5 {
		return 0, errors.New("short answer")
	}
	if body[0] != 0 {
		return 0, errors.New("compressed answer")
	}
	n := binary.BigEndian.Uint32(body[1:5])
	if uint64(len(body)-5) < uint64(n) {
		return 0, errors.New("truncated answer")
	}
	msg := body[5 : 5+n]
	var status uint64
	for len(msg) > 0 {
		num, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		msg = msg[l:]
		if num == 1 && typ == protowire.VarintType {
			v, l := protowire.ConsumeVarint(msg)
			if l < 0 {
				return 0, protowire.ParseError(l)
			}
			status, msg = v, msg[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(num, typ, msg)
		if l < 0 {
			return 0, protowire.ParseError(l)
		}
		msg = msg[l:]
	}
	return status, nil
}

func healthStatusName(s uint64) string {
	switch s {
	case 0:
		return "UNKNOWN"
	case 1:
		return "SERVING"
	case 2:
		return "NOT_SERVING"
	case 3:
		return "SERVICE_UNKNOWN"
	}
	return strconv.FormatUint(s, 10)
}
