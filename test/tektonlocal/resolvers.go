package tektonlocal

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// ResolversNamespace holds the resolvers' ConfigMaps, as in a release.
const ResolversNamespace = "tekton-pipelines-resolvers"

// resolversStarted tells whether the five reconcilers cmd/resolvers
// starts, one per resolver, have started (their log lines do not say
// which is which).
func resolversStarted(started []string) bool { return len(started) >= 5 }

// ResolversOptions changes how the resolvers run.
type ResolversOptions struct {
	// Configs override keys of the resolvers' ConfigMaps, by ConfigMap
	// name (git-resolver-config, bundleresolver-config, …); every other key
	// keeps the release's value.
	Configs map[string]map[string]string
	// Env is more environment (ARTIFACT_HUB_API, TEKTON_HUB_API).
	Env []string
}

// StartResolvers runs Tekton's resolvers deployment (cmd/resolvers of the
// pinned release: git, hub, bundles, cluster and http) on the host against
// the local cluster until the test ends, with the release's
// config/resolvers ConfigMaps. It answers every ResolutionRequest in the
// cluster. It binds the same fixed host ports as Tekton's controller and
// holds the same lock: the two never run at once here.
func StartResolvers(t testing.TB, opts ResolversOptions) *Controller {
	t.Helper()
	kubeconfig := os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		t.Fatal("tektonlocal: KUBECONFIG is not set")
	}
	began := time.Now()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := lock(t, filepath.Join(root, ".cache", "tekton", "controller.lock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
	bin, err := Build(root)
	if err != nil {
		t.Fatal(err)
	}
	moduleDir, err := tektonModule(root)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ResolversConfig(moduleDir, opts.Configs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("kubectl", "apply", "--server-side", "--force-conflicts", "--field-manager=pod-runner-tektonlocal", "-f", "-")
	cmd.Stdin = bytes.NewReader(cfg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tektonlocal: apply the resolvers' config: %v: %s", err, out)
	}
	env, err := deploymentEnv(filepath.Join(moduleDir, "config", "resolvers", "resolvers-deployment.yaml"), ResolversNamespace)
	if err != nil {
		t.Fatal(err)
	}
	c := launch(t, root, filepath.Join(bin, "resolvers"), []string{"-kubeconfig", kubeconfig}, append(env, opts.Env...), "resolvers", resolversStarted)
	c.Setup = time.Since(began)
	t.Logf("Tekton %s resolvers ready in %.1fs; log %s", Version, c.Setup.Seconds(), c.LogPath)
	return c
}

// ResolversConfig is the namespace and ConfigMaps of the release's
// config/resolvers (not its RBAC, Deployment or Service: the resolvers run
// on the host with the test's kubeconfig), with the overrides, as one YAML
// stream.
func ResolversConfig(moduleDir string, overrides map[string]map[string]string) ([]byte, error) {
	files, err := filepath.Glob(filepath.Join(moduleDir, "config", "resolvers", "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no config/resolvers in %s: %v", moduleDir, err)
	}
	sort.Strings(files)
	var out bytes.Buffer
	found := map[string]bool{}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("resolvers config: %w", err)
		}
		cm := &corev1.ConfigMap{}
		if err := yaml.Unmarshal(b, cm); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		switch {
		case cm.Kind == "Namespace":
		case cm.Kind != "ConfigMap":
			continue
		case overrides[cm.Name] != nil:
			found[cm.Name] = true
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			for k, v := range overrides[cm.Name] {
				cm.Data[k] = v
			}
			if b, err = yaml.Marshal(cm); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
		}
		out.WriteString("---\n")
		out.Write(b)
		out.WriteString("\n")
	}
	for name := range overrides {
		if !found[name] {
			return nil, fmt.Errorf("config/resolvers has no ConfigMap %q to override", name)
		}
	}
	if !strings.Contains(out.String(), "kind: Namespace") {
		return nil, fmt.Errorf("config/resolvers has no Namespace")
	}
	return out.Bytes(), nil
}
