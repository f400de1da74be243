package resolve_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/resolution/v1beta1"
	"github.com/tektoncd/pipeline/pkg/remoteresolution/resource"
	"github.com/tektoncd/pipeline/pkg/resolution/common"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/resolve"
)

const taskYAML = "apiVersion: tekton.dev/v1\nkind: Task\nmetadata: {name: t}\n"

func request(params ...string) resource.Request {
	var ps v1.Params
	for i := 0; i+1 < len(params); i += 2 {
		ps = append(ps, v1.Param{Name: params[i], Value: *v1.NewStructuredValues(params[i+1])})
	}
	return resource.NewRequest(resource.ResolverPayload{Name: "run-t", Namespace: "ns",
		ResolutionSpec: &v1beta1.ResolutionRequestSpec{Params: ps}})
}

func newRequester(t *testing.T, opts resolve.Options) *resolve.Requester {
	t.Helper()
	if opts.Kube == nil {
		opts.Kube = fake.NewClientset()
	}
	r, err := resolve.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestHTTP: the http resolver fetches a URL, with basic auth from a Secret,
// and says which URL failed and how.
func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); r.URL.Path == "/private" && (!ok || u != "me" || p != "s3cret") {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, taskYAML)
	}))
	defer srv.Close()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "auth", Namespace: "ns"}, Data: map[string][]byte{"password": []byte("s3cret")}}
	r := newRequester(t, resolve.Options{Kube: fake.NewClientset(secret)})

	got, err := r.Submit(context.Background(), "http", request("url", srv.URL+"/task.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := got.Data(); string(data) != taskYAML {
		t.Errorf("data = %q", data)
	}
	if src := got.RefSource(); src == nil || src.URI != srv.URL+"/task.yaml" || src.Digest["sha256"] == "" {
		t.Errorf("refSource = %+v", src)
	}
	if _, err := r.Submit(context.Background(), "http", request("url", srv.URL+"/private",
		"http-username", "me", "http-password-secret", "auth", "http-password-secret-key", "password")); err != nil {
		t.Errorf("with basic auth: %v", err)
	}
	_, err = r.Submit(context.Background(), "http", request("url", srv.URL+"/private"))
	var getErr *common.GetResourceError
	if !errors.As(err, &getErr) || !strings.Contains(err.Error(), srv.URL+"/private") {
		t.Errorf("without auth: %v, want the resolver's GetResourceError naming the URL", err)
	}
	if _, err := r.Submit(context.Background(), "http", request("url", "not a url")); err == nil || !strings.Contains(err.Error(), "url") {
		t.Errorf("bad url: %v, want an invalid request naming the url", err)
	}
}

// TestTimeout: a server that never answers ends in the resolver's timeout
// (http-resolver-config fetch-timeout), not a hang.
func TestTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	r := newRequester(t, resolve.Options{Configs: map[string]map[string]string{"http-resolver-config": {"fetch-timeout": "300ms"}}})
	start := time.Now()
	_, err := r.Submit(context.Background(), "http", request("url", srv.URL))
	if err == nil || time.Since(start) > 30*time.Second {
		t.Fatalf("Submit = %v after %v, want a timeout", err, time.Since(start))
	}
	t.Logf("error: %v", err)
}

// TestGitFileURL: Tekton's git resolver takes a file:// repository only
// when FileURLs is set, and never with a revision that looks like an option.
func TestGitFileURL(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "task.yaml"), []byte(taskYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "x"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	url := "file://" + dir
	allowed := newRequester(t, resolve.Options{FileURLs: true})
	got, err := allowed.Submit(context.Background(), "git", request("url", url, "revision", "main", "pathInRepo", "task.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := got.Data(); string(data) != taskYAML {
		t.Errorf("data = %q", data)
	}
	if src := got.RefSource(); src == nil || src.URI != "git+"+url || src.EntryPoint != "task.yaml" || len(src.Digest["sha1"]) != 40 {
		t.Errorf("refSource = %+v", src)
	}
	if _, err := allowed.Submit(context.Background(), "git", request("url", url, "revision", "--upload-pack=touch /tmp/x", "pathInRepo", "task.yaml")); err == nil {
		t.Error("a revision that looks like an option was let through")
	}
	refused := newRequester(t, resolve.Options{})
	if _, err := refused.Submit(context.Background(), "git", request("url", url, "revision", "main", "pathInRepo", "task.yaml")); err == nil {
		t.Error("a file:// URL was taken without FileURLs (Tekton's resolver refuses it)")
	}
}

// TestUnknownResolver: the cluster resolver without a cluster, and a name
// no resolver has, are each one clear error.
func TestUnknownResolver(t *testing.T) {
	r := newRequester(t, resolve.Options{})
	if _, err := r.Submit(context.Background(), "cluster", request("name", "t")); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("cluster: %v", err)
	}
	if _, err := r.Submit(context.Background(), "nowhere", request()); err == nil || !strings.Contains(err.Error(), "bundles, git, http, hub") {
		t.Errorf("nowhere: %v", err)
	}
}

// TestFreshInstallConfigs: the resolvers' defaults are those of Tekton's
// own config/resolvers ConfigMaps in the pinned module.
func TestFreshInstallConfigs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tektoncd/pipeline").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "resolvers")
	for name, want := range resolve.FreshInstallConfigs {
		raw, err := os.ReadFile(filepath.Join(dir, name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal(raw, &cm); err != nil {
			t.Fatal(err)
		}
		if cm.Name != name || !reflect.DeepEqual(cm.Data, want) {
			t.Errorf("%s: Tekton's data %v, ours %v", name, cm.Data, want)
		}
	}
}
