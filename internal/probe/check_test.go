package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/e7763abc/pod-runner/proto/planpb"
)

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := port(t, ln.Addr().String())
	ln.Close()
	return p
}

func TestCheckHTTP(t *testing.T) {
	var seen http.Header
	var seenHost, seenURI string
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		seen, seenHost, seenURI = r.Header.Clone(), r.Host, r.RequestURI
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready yet", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/local-redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/fail", http.StatusFound)
	})
	mux.HandleFunc("/remote-redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()
	u, _ := url.Parse(srv.URL)
	tu, _ := url.Parse(tlsSrv.URL)

	get := func(a *planpb.HTTPGetAction) *planpb.Probe {
		return &planpb.Probe{Action: &planpb.Probe_HttpGet{HttpGet: a}}
	}
	for _, c := range []struct {
		name    string
		probe   *planpb.Probe
		wantErr string // empty: success
	}{
		{name: "200", probe: get(&planpb.HTTPGetAction{Port: port(t, u.Host), Path: "/ok"})},
		{name: "503 fails, with its body", probe: get(&planpb.HTTPGetAction{Port: port(t, u.Host), Path: "/fail"}),
			wantErr: "HTTP probe failed with statuscode: 503: not ready yet"},
		{name: "a redirect on the same host is followed", probe: get(&planpb.HTTPGetAction{Port: port(t, u.Host), Path: "/local-redirect"}),
			wantErr: "statuscode: 503"},
		{name: "a redirect to another host is a 3xx success", probe: get(&planpb.HTTPGetAction{Port: port(t, u.Host), Path: "/remote-redirect"})},
		{name: "unknown path: 404", probe: get(&planpb.HTTPGetAction{Port: port(t, u.Host), Path: "/nope"}), wantErr: "statuscode: 404"},
		{name: "HTTPS, certificate not verified", probe: get(&planpb.HTTPGetAction{Scheme: "HTTPS", Port: port(t, tu.Host), Path: "/ok"})},
		{name: "nothing listens", probe: get(&planpb.HTTPGetAction{Port: closedPort(t), Path: "/ok"}), wantErr: "connection refused"},
		{name: "past timeoutSeconds", probe: &planpb.Probe{TimeoutSeconds: 1,
			Action: &planpb.Probe_HttpGet{HttpGet: &planpb.HTTPGetAction{Port: port(t, u.Host), Path: "/slow"}}},
			wantErr: "deadline exceeded"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			err := (&Prober{}).Check(context.Background(), c.probe)
			checkErr(t, err, c.wantErr)
			if time.Since(start) > 2500*time.Millisecond {
				t.Errorf("the probe took %v, past its timeout", time.Since(start))
			}
		})
	}

	t.Run("headers, host and query", func(t *testing.T) {
		pr := get(&planpb.HTTPGetAction{Port: port(t, u.Host), Path: "/ok?x=1", Headers: []*planpb.HTTPHeader{
			{Name: "X-Probe", Value: "yes"}, {Name: "Host", Value: "sidecar.example"},
		}})
		if err := (&Prober{}).Check(context.Background(), pr); err != nil {
			t.Fatalf("Check: %v", err)
		}
		if seen.Get("X-Probe") != "yes" || seen.Get("Accept") != "*/*" || !strings.HasPrefix(seen.Get("User-Agent"), "kube-probe/") {
			t.Errorf("request headers %v, want X-Probe, Accept */* and a kube-probe/ User-Agent", seen)
		}
		if seenHost != "sidecar.example" || seenURI != "/ok?x=1" {
			t.Errorf("Host %q, URI %q: want the Host header's and the path with its query", seenHost, seenURI)
		}
	})
	t.Run("the probe's own User-Agent wins", func(t *testing.T) {
		pr := get(&planpb.HTTPGetAction{Port: port(t, u.Host), Path: "/ok", Headers: []*planpb.HTTPHeader{{Name: "User-Agent", Value: "mine"}}})
		if err := (&Prober{}).Check(context.Background(), pr); err != nil {
			t.Fatalf("Check: %v", err)
		}
		if got := seen.Values("User-Agent"); len(got) != 1 || got[0] != "mine" {
			t.Errorf("User-Agent %q, want only the probe's", got)
		}
	})
}

func TestCheckTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcp := func(p int32, host string) *planpb.Probe {
		return &planpb.Probe{Action: &planpb.Probe_TcpSocket{TcpSocket: &planpb.TCPSocketAction{Port: p, Host: host}}}
	}
	checkErr(t, (&Prober{}).Check(context.Background(), tcp(port(t, ln.Addr().String()), "")), "")
	checkErr(t, (&Prober{}).Check(context.Background(), tcp(port(t, ln.Addr().String()), "localhost")), "")
	checkErr(t, (&Prober{}).Check(context.Background(), tcp(closedPort(t), "")), "connection refused")
	// Prober.Host is the default host: nothing listens there.
	checkErr(t, (&Prober{Host: "127.0.0.2"}).Check(context.Background(), tcp(port(t, ln.Addr().String()), "")), "connection refused")
}

func TestCheckGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("cache", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	defer srv.Stop()
	bare := grpc.NewServer() // no health service
	bareLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go bare.Serve(bareLn)
	defer bare.Stop()

	g := func(p int32, service string) *planpb.Probe {
		return &planpb.Probe{Action: &planpb.Probe_Grpc{Grpc: &planpb.GRPCAction{Port: p, Service: service}}}
	}
	p := port(t, ln.Addr().String())
	for _, c := range []struct {
		name    string
		probe   *planpb.Probe
		wantErr string
	}{
		{name: "the server's overall health", probe: g(p, "")},
		{name: "a serving service", probe: g(p, "db")},
		{name: "a service not serving", probe: g(p, "cache"), wantErr: `service unhealthy (responded with "NOT_SERVING")`},
		{name: "an unknown service", probe: g(p, "nope"), wantErr: "code = 5"},
		{name: "no health service", probe: g(port(t, bareLn.Addr().String()), ""), wantErr: "does not implement the grpc health protocol"},
		{name: "nothing listens", probe: g(closedPort(t), ""), wantErr: "connection refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkErr(t, (&Prober{}).Check(context.Background(), c.probe), c.wantErr)
		})
	}
}

func TestCheckExecAndNoAction(t *testing.T) {
	var got []string
	var gotTimeout time.Duration
	p := &Prober{Exec: func(_ context.Context, command []string, timeout time.Duration) error {
		got, gotTimeout = command, timeout
		return nil
	}}
	pr := &planpb.Probe{TimeoutSeconds: 7, Action: &planpb.Probe_Exec{Exec: &planpb.ExecAction{Command: []string{"ls", "/x"}}}}
	if err := p.Check(context.Background(), pr); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if strings.Join(got, " ") != "ls /x" || gotTimeout != 7*time.Second {
		t.Errorf("exec %q with timeout %v, want \"ls /x\" and 7s", got, gotTimeout)
	}
	checkErr(t, (&Prober{}).Check(context.Background(), pr), "exec probes cannot run here")
	checkErr(t, (&Prober{}).Check(context.Background(), &planpb.Probe{}), "no action")
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("Check: %v, want a success", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("Check: %v, want an error saying %q", err, want)
	}
}
