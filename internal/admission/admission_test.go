package admission

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

func TestDelegator(t *testing.T) {
	d := Delegator{ManagedBy: "pod-runner.dev/controller"}
	for _, tc := range []struct {
		name, run string
		op        admissionv1.Operation
		patched   bool
		denied    bool
		version   string
		warned    bool
	}{
		{name: "no manager", run: `{"metadata": {"name": "r"}, "spec": {"pipelineRef": {"name": "p"}}}`, op: admissionv1.Create, patched: true},
		{name: "another manager", run: `{"spec": {"managedBy": "tekton.dev/pipeline"}}`, op: admissionv1.Create},
		{name: "ours already", run: `{"spec": {"managedBy": "pod-runner.dev/controller"}}`, op: admissionv1.Create},
		{name: "opted out", run: `{"metadata": {"annotations": {"pod-runner.dev/managed": "false"}}, "spec": {}}`, op: admissionv1.Create},
		{name: "an annotation that does not opt out", run: `{"metadata": {"annotations": {"pod-runner.dev/managed": "true"}}, "spec": {}}`, op: admissionv1.Create, patched: true},
		{name: "update", run: `{"spec": {}}`, op: admissionv1.Update},
		{name: "not JSON", run: `{`, op: admissionv1.Create, denied: true},
		{name: "created through v1beta1", run: `{"spec": {}}`, op: admissionv1.Create, version: "v1beta1", warned: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
				Operation: tc.op, Object: runtime.RawExtension{Raw: []byte(tc.run)}}}
			if tc.version != "" {
				req.RequestKind = &metav1.GroupVersionKind{Group: "tekton.dev", Version: tc.version, Kind: "PipelineRun"}
			}
			resp := d.Handle(context.Background(), req)
			if got := len(resp.Warnings) > 0; got != tc.warned {
				t.Errorf("warnings %q, want some: %v", resp.Warnings, tc.warned)
			}
			if resp.Allowed == tc.denied {
				t.Fatalf("allowed = %v, want %v (%+v)", resp.Allowed, !tc.denied, resp.Result)
			}
			if got := len(resp.Patches) == 1; got != tc.patched {
				t.Fatalf("patches %+v, want patched %v", resp.Patches, tc.patched)
			}
			if tc.patched {
				p := resp.Patches[0]
				if p.Operation != "add" || p.Path != "/spec/managedBy" || p.Value != "pod-runner.dev/controller" {
					t.Errorf("patch %+v", p)
				}
			}
		})
	}
}

// TestBootstrap: the serving certificate verifies against the CA for each
// host, by name and by address, and a TLS server using the files serves a
// client that trusts only that CA.
func TestBootstrap(t *testing.T) {
	dir := t.TempDir()
	caPEM, err := Bootstrap(dir, []string{"pod-runner-webhook.pod-runner.svc", "127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("the CA is not PEM")
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"pod-runner-webhook.pod-runner.svc", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "elsewhere.example"}); err == nil {
		t.Error("the certificate verifies for a host it was not made for")
	}

	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })}
	go srv.Serve(l)
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + l.Addr().(*net.TCPAddr).String())
	if err != nil {
		t.Fatalf("a client trusting the CA: %v", err)
	}
	resp.Body.Close()
}

// TestInjectCABundle: each call adds its CA to every webhook of the
// configuration, the newest keptCAs kept.
func TestInjectCABundle(t *testing.T) {
	s := runtime.NewScheme()
	if err := admissionregistrationv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-runner"},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "a.pod-runner.dev"}, {Name: "b.pod-runner.dev"}},
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(cfg).Build()
	var cas [][]byte
	for i := 0; i < keptCAs+2; i++ {
		ca, err := Bootstrap(t.TempDir(), []string{"127.0.0.1"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cas = append(cas, ca)
		if err := InjectCABundle(context.Background(), c, "pod-runner", ca); err != nil {
			t.Fatal(err)
		}
	}
	got := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: "pod-runner"}, got); err != nil {
		t.Fatal(err)
	}
	want := string(joinPEM(cas[len(cas)-keptCAs:]))
	for _, w := range got.Webhooks {
		if string(w.ClientConfig.CABundle) != want {
			t.Errorf("webhook %s caBundle holds %d certificates, want the newest %d in order", w.Name, strings.Count(string(w.ClientConfig.CABundle), "BEGIN CERTIFICATE"), keptCAs)
		}
	}
	// Again with the newest: nothing changes.
	rv := got.ResourceVersion
	if err := InjectCABundle(context.Background(), c, "pod-runner", cas[len(cas)-1]); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Name: "pod-runner"}, got); err != nil || got.ResourceVersion != rv {
		t.Errorf("a CA already there was written again (resourceVersion %s → %s, %v)", rv, got.ResourceVersion, err)
	}

	// Replaced without it: KeepCABundle puts it back.
	got.Webhooks[0].ClientConfig.CABundle = nil
	if err := c.Update(context.Background(), got); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		KeepCABundle(ctx, c, "pod-runner", cas[len(cas)-1], 10*time.Millisecond, func(err error) { t.Error(err) })
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := c.Get(context.Background(), client.ObjectKey{Name: "pod-runner"}, got); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(got.Webhooks[0].ClientConfig.CABundle), strings.TrimSpace(string(cas[len(cas)-1]))) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("KeepCABundle did not put the CA back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	if err := InjectCABundle(context.Background(), c, "missing", cas[0]); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a configuration that does not exist: %v", err)
	}
}

func joinPEM(certs [][]byte) []byte {
	var out []byte
	for _, c := range certs {
		b, _ := pem.Decode(c)
		out = append(out, pem.EncodeToMemory(b)...)
	}
	return out
}
