package tektonlocal

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/e7763abc/pod-runner/test/kube"
)

// Version is the pinned Tekton release whose controller runs here.
const Version = "v1.15.1"

const modulePath = "github.com/tektoncd/pipeline"

// commands are the Tekton binaries the controller, its resolvers and its
// pods need.
var commands = []string{"controller", "resolvers", "entrypoint", "nop", "workingdirinit", "sidecarlogresults"}

// imageCommands are the ones the controller puts in pods, as
// /ko-app/<name> of the image passed with -<name>-image.
var imageCommands = []string{"entrypoint", "nop", "workingdirinit", "sidecarlogresults"}

// ImageRef is the local image holding /ko-app/<name>.
func ImageRef(name string) string { return "localhost/tekton-" + name + ":" + Version }

// repoRoot is this module's directory (`go env GOMOD` from the test's
// working directory, which is inside it).
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// Packages are Tekton's commands as import paths: this module's go.mod
// names each as a tool, so its go.sum holds every module they need.
func Packages() []string {
	pkgs := make([]string, len(commands))
	for i, c := range commands {
		pkgs[i] = modulePath + "/cmd/" + c
	}
	return pkgs
}

// BuildEnv is the environment Tekton's commands are built in: the caller's
// (GOMODCACHE, GOCACHE, GOPROXY as the machine has them), static binaries,
// and go.mod and go.sum read-only, so that the build downloads only what
// go.sum already pins, through the module proxy, and never needs the
// checksum database, whatever the module cache holds.
func BuildEnv() []string {
	return append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
}

// Build builds Tekton's commands from the pinned module into
// <root>/.cache/tekton/bin and returns that directory. They are tools of
// this module, built with its go.mod and go.sum; go build leaves
// up-to-date binaries alone.
func Build(root string) (string, error) {
	bin := filepath.Join(root, ".cache", "tekton", "bin")
	return bin, build(root, bin, BuildEnv())
}

// build builds Tekton's commands into bin with env.
func build(root, bin string, env []string) error {
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("tekton bin dir: %w", err)
	}
	args := append([]string{"build", "-trimpath", "-o", bin + string(filepath.Separator)}, Packages()...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), root, err, out)
	}
	return nil
}

// Images makes one image per command the controller puts in pods (the
// binary as /ko-app/<name>, and /tmp) with local-k8s's images/mkimage.py,
// and imports it into the cluster's containerd. An image already imported
// from the same binary is left alone.
func Images(root, bin string) error {
	mkimage := filepath.Join(localK8s(root), "images", "mkimage.py")
	if _, err := os.Stat(mkimage); err != nil {
		return fmt.Errorf("local-k8s's image builder: %w (set LOCAL_K8S)", err)
	}
	work := filepath.Join(root, ".cache", "tekton", "images")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("images dir: %w", err)
	}
	for _, name := range imageCommands {
		if err := image(mkimage, work, bin, name); err != nil {
			return err
		}
	}
	return nil
}

func image(mkimage, work, bin, name string) error {
	ref := ImageRef(name)
	// By content: go build touches up-to-date binaries.
	sum, err := fileHash(filepath.Join(bin, name))
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	stampPath := filepath.Join(work, name+".imported")
	stamp := ref + " " + sum
	if have, _ := os.ReadFile(stampPath); string(have) == stamp && imported(ref) {
		return nil
	}
	rootfs, err := os.MkdirTemp(work, name+"-rootfs-")
	if err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	defer os.RemoveAll(rootfs)
	if err := os.Chmod(rootfs, 0o755); err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	for _, d := range []string{"ko-app", "tmp"} {
		if err := os.Mkdir(filepath.Join(rootfs, d), 0o755); err != nil {
			return fmt.Errorf("image %s: %w", ref, err)
		}
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), os.ModeSticky|0o777); err != nil {
		return fmt.Errorf("image %s: %w", ref, err)
	}
	// A hard link when bin and the image's work dir share a filesystem
	// (they do: both under .cache/tekton), a copy otherwise.
	dst := filepath.Join(rootfs, "ko-app", name)
	if err := os.Link(filepath.Join(bin, name), dst); err != nil {
		if out, err := exec.Command("cp", filepath.Join(bin, name), dst).CombinedOutput(); err != nil {
			return fmt.Errorf("image %s: copy binary: %w: %s", ref, err, out)
		}
	}
	tar := filepath.Join(work, name+".tar")
	if out, err := exec.Command("python3", mkimage, rootfs, ref, tar, "/ko-app/"+name).CombinedOutput(); err != nil {
		return fmt.Errorf("image %s: mkimage.py: %w: %s", ref, err, out)
	}
	defer os.Remove(tar)
	if out, err := ctr("images", "import", tar); err != nil {
		return fmt.Errorf("image %s: ctr import: %w: %s", ref, err, out)
	}
	if err := os.WriteFile(stampPath, []byte(stamp), 0o644); err != nil {
		return fmt.Errorf("image %s: stamp: %w", ref, err)
	}
	return nil
}

func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// HasImage reports whether the cluster's containerd has the image ref.
func HasImage(ref string) bool { return imported(ref) }

// imported reports whether containerd has the image under ref.
func imported(ref string) bool {
	out, err := ctr("images", "ls", "-q", "name=="+ref)
	return err == nil && strings.TrimSpace(string(out)) == ref
}

// ctr runs containerd's client against the cluster's containerd, in the
// namespace the kubelet uses, as the Makefile's k8s-images does.
func ctr(args ...string) ([]byte, error) {
	sock := filepath.Join(kube.State(), "containerd", "containerd.sock")
	return exec.Command("ctr", append([]string{"-a", sock, "-n", "k8s.io"}, args...)...).CombinedOutput()
}

// localK8s is the local-k8s tool's directory (the Makefile's LOCAL_K8S),
// or else the one beside this checkout.
func localK8s(root string) string {
	if s := os.Getenv("LOCAL_K8S"); s != "" {
		return s
	}
	return filepath.Join(filepath.Dir(root), "shared", "tools", "local-k8s")
}
