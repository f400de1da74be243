//go:build !inpod

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/mountns"
	"github.com/e7763abc/pod-runner/internal/podmanrun"
	"github.com/e7763abc/pod-runner/internal/podspec"
	"github.com/e7763abc/pod-runner/internal/process"
	"github.com/e7763abc/pod-runner/internal/progress"
	"github.com/e7763abc/pod-runner/internal/resolve"
	"github.com/e7763abc/pod-runner/internal/supervisor"
	"github.com/e7763abc/pod-runner/internal/tektonstatus"
	"github.com/e7763abc/pod-runner/proto/planpb"
	corev1 "k8s.io/api/core/v1"
)

func init() {
	commands["run"] = runMain
}

// mountSelf is the binary that runs a step in a mount namespace: the
// step-only pod-runner-step beside this one when there is one (make build
// builds it), which starts in a millisecond, else this one.
func mountSelf() string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	if st, err := os.Stat(self + "-step"); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return self + "-step"
	}
	return self
}

// runMain is `pod-runner run`: run a PipelineRun or TaskRun on this machine.
func runMain(args []string) int {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	files := fs.StringArrayP("filename", "f", nil, "YAML file with the PipelineRun or TaskRun and what it references (repeatable; - for stdin)")
	output := fs.StringP("output", "o", "text", "final status format: text, json or yaml")
	workspaces := fs.StringArray("workspace", nil, "bind a workspace to a host directory: NAME=DIR (repeatable)")
	params := fs.StringArrayP("param", "p", nil, "set a param: NAME=VALUE (repeatable; JSON for array and object params)")
	keep := fs.Bool("keep", false, "keep the run directory (volumes, results, scripts) and print its path")
	namespace := fs.String("namespace", "default", "namespace of runs that name none")
	quiet := fs.BoolP("quiet", "q", false, "no live progress on stderr")
	kubeconfig := fs.String("kubeconfig", "", "cluster the cluster resolver reads, and the Secrets of the other resolvers (default: none, Secrets from the documents)")
	runtime := fs.String("runtime", "host", "where steps run: host (processes on this machine; images unused) or podman (the run's one Pod under podman kube play, each step in its image)")
	image := fs.String("image", podspec.DefaultImage, "with --runtime podman: the pod-runner image (make images builds it)")
	entrypoints := fs.StringArray("entrypoint", nil, "IMAGE=CMD: the command of an image (its ENTRYPOINT and CMD) for the steps that give none, as a registry would tell (CMD a JSON array or words; repeatable)")
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(*files) == 0 {
		fmt.Fprintln(os.Stderr, "pod-runner run: at least one -f FILE is required")
		return 2
	}
	switch *output {
	case "text", "json", "yaml":
	default:
		fmt.Fprintf(os.Stderr, "pod-runner run: --output: %q is not one of text, json, yaml\n", *output)
		return 2
	}
	if *runtime != "host" && *runtime != "podman" {
		fmt.Fprintf(os.Stderr, "pod-runner run: --runtime: %q is not one of host, podman\n", *runtime)
		return 2
	}
	opts := compile.Options{Namespace: *namespace}
	var err error
	if opts.Params, err = keyValues("--param", *params); err == nil {
		opts.Workspaces, err = keyValues("--workspace", *workspaces)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner run: %v\n", err)
		return 2
	}

	over := &podspec.Overrides{Commands: map[string][]string{}}
	for _, e := range *entrypoints {
		img, cmd, err := podspec.ParseOverride(e)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pod-runner run: --entrypoint %v\n", err)
			return 2
		}
		over.Commands[img] = cmd
	}

	compiled, err := compileFiles(*files, opts, *kubeconfig)
	if err == nil && *runtime == "host" {
		withEntrypoints(compiled.Plan, over)
		err = compiled.LocalError()
		if err == nil {
			err = process.Unsupported(compiled.Plan, mountns.Available())
		}
	}
	var pod *compiledPod
	if err == nil && *runtime == "podman" {
		pod, err = podOf(compiled, *image, over)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner run: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var progressOut io.Writer = os.Stderr
	if *quiet {
		progressOut = io.Discard
	}
	var status *planpb.RunStatus
	if pod != nil {
		status, err = podmanrun.Run(ctx, pod.pod, pod.objects, compiled.Plan,
			podmanrun.Options{Reporter: progress.New(progressOut), Output: progressOut, Keep: *keep})
	} else {
		launcher := process.New(process.Options{Keep: *keep, Log: progressOut, Shell: busybox(), Self: mountSelf(), Objects: compiled, TaskMounts: taskMounts(compiled)})
		sup := &supervisor.Supervisor{
			Plan:     compiled.Plan,
			Launcher: launcher,
			Reporter: progress.New(progressOut),
		}
		status, err = sup.Run(ctx)
		if err == nil && *keep {
			fmt.Fprintf(os.Stderr, "run directory kept: %s\n", launcher.RunDir())
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner run: %v\n", err)
		return 1
	}
	if *output == "text" {
		tektonstatus.Summary(os.Stdout, compiled, status)
	} else if err := tektonstatus.Write(os.Stdout, *output, tektonstatus.List(compiled, status)); err != nil {
		fmt.Fprintf(os.Stderr, "pod-runner run: write status: %v\n", err)
		return 1
	}
	if status.GetCondition().GetStatus() == "True" {
		return 0
	}
	return 1
}

// compileFiles reads every file and compiles the run they hold, resolving
// its resolver references in-process.
func compileFiles(files []string, opts compile.Options, kubeconfig string) (*compile.Compiled, error) {
	var docs []load.Doc
	for _, name := range files {
		r, closeFile, err := open(name)
		if err != nil {
			return nil, err
		}
		d, err := load.Read(name, r)
		closeFile()
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	ctx := context.Background()
	opts.FeatureFlags, opts.Defaults = compile.TektonConfig(docs)
	opts.Requester = &lazyRequester{make: func() (*resolve.Requester, error) {
		return requester(ctx, docs, opts.Namespace, kubeconfig)
	}}
	return compile.Compile(ctx, docs, opts)
}

func open(name string) (io.Reader, func(), error) {
	if name == "-" {
		return os.Stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	return f, func() { f.Close() }, nil
}

// busybox is the busybox binary on PATH, or "". Most Tekton steps run in
// busybox or alpine images, whose sh is busybox's ash: locally it stands for
// sh and ash when installed.
func busybox() string {
	p, _ := exec.LookPath("busybox")
	return p
}

// keyValues parses NAME=VALUE flags.
func keyValues(flag string, kvs []string) (map[string]string, error) {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want NAME=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// compiledPod is the run's Pod and the ConfigMaps and Secrets it needs.
type compiledPod struct {
	pod     *corev1.Pod
	objects []any
}

// podOf compiles the run into its Pod as `injector compile` does, a
// workspace bound to a directory of this machine mounted from it
// (podman runs the Pod here). A step that names neither command nor
// script runs its image's command as --entrypoint gives it; with none, it
// is refused: it would be looked up in a registry.
func podOf(c *compile.Compiled, image string, over *podspec.Overrides) (*compiledPod, error) {
	list, err := podspec.Build(context.Background(), c, podspec.Options{Image: image, HostPaths: true, Resolver: over})
	if err != nil {
		return nil, err
	}
	r := &compiledPod{}
	for _, it := range list.Items {
		if p, ok := it.Object.(*corev1.Pod); ok {
			r.pod = p
		} else {
			r.objects = append(r.objects, it.Object)
		}
	}
	if r.pod == nil {
		return nil, errors.New("the compiled manifest has no Pod")
	}
	return r, nil
}

// taskMounts are the compiled Task volumes and volumeMounts, for the
// process launcher.
func taskMounts(c *compile.Compiled) map[string]*process.TaskMounts {
	out := map[string]*process.TaskMounts{}
	mounts := func(ms []corev1.VolumeMount) []process.Mount {
		var out []process.Mount
		for _, m := range ms {
			out = append(out, process.Mount{Name: m.Name, MountPath: m.MountPath, SubPath: m.SubPath, ReadOnly: m.ReadOnly})
		}
		return out
	}
	for task, tv := range c.TaskVolumes {
		tm := &process.TaskMounts{Volumes: tv.Local}
		for _, ms := range tv.Steps {
			tm.Steps = append(tm.Steps, mounts(ms))
		}
		for _, ms := range tv.Sidecars {
			tm.Sidecars = append(tm.Sidecars, mounts(ms))
		}
		out[task] = tm
	}
	return out
}

// withEntrypoints gives the steps and sidecars that name neither command
// nor script their image's command from --entrypoint (a host process has
// no image to read it from); the others are refused when they start.
func withEntrypoints(plan *planpb.Plan, over *podspec.Overrides) {
	for _, t := range plan.AllTasks() {
		for _, s := range slices.Concat(t.GetSpec().GetSteps(), t.GetSpec().GetSidecars()) {
			if len(s.GetCommand()) > 0 || s.GetScript() != "" {
				continue
			}
			if cmd, ok := over.Commands[s.GetImage()]; ok {
				s.Command = slices.Clone(cmd)
			}
		}
	}
}
