package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/e7763abc/pod-runner/internal/compile"
	"github.com/e7763abc/pod-runner/internal/load"
	"github.com/e7763abc/pod-runner/internal/podspec"
)

// compileMain is `injector compile`: print the Pod (and the objects it
// needs) that runs the given PipelineRun or TaskRun, as a v1 List. Invalid
// input exits 2 with the message `pod-runner run` gives.
func compileMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("compile", pflag.ContinueOnError)
	files := fs.StringArrayP("filename", "f", nil, "YAML file with the PipelineRun or TaskRun and what it references (repeatable; - for stdin)")
	output := fs.StringP("output", "o", "yaml", "manifest format: yaml or json (a v1 List), or yaml-docs (one YAML document per object, for podman kube play, which reads no List)")
	image := fs.String("image", podspec.DefaultImage, "the pod-runner image (init and supervisor containers)")
	nativeSidecar := fs.Bool("native-sidecar", false, "run the supervisor as a native sidecar (Kubernetes 1.29+; not podman 4.3, which runs init containers to their end first)")
	namespace := fs.String("namespace", "default", "namespace of runs that name none")
	params := fs.StringArrayP("param", "p", nil, "set a param: NAME=VALUE (repeatable; JSON for array and object params)")
	entrypoints := fs.StringArray("entrypoint", nil, "the command of IMAGE for steps with no command, instead of a registry lookup: IMAGE=CMD (CMD: words, or a JSON array; repeatable)")
	offline := fs.Bool("offline", false, "never look images up in a registry: steps with no command need --entrypoint")
	platform := fs.String("platform", "linux/"+runtime.GOARCH, "platform whose entrypoint is read from multi-platform images")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "injector compile: %v\n", err)
		return 2
	}
	if len(*files) == 0 {
		return fail(errors.New("at least one -f FILE is required"))
	}
	switch *output {
	case "yaml", "json", "yaml-docs":
	default:
		return fail(fmt.Errorf("--output: %q is not one of yaml, json, yaml-docs", *output))
	}
	ps := map[string]string{}
	for _, kv := range *params {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fail(fmt.Errorf("--param %q: want NAME=VALUE", kv))
		}
		ps[k] = v
	}
	over := &podspec.Overrides{Commands: map[string][]string{}}
	for _, e := range *entrypoints {
		img, cmd, err := podspec.ParseOverride(e)
		if err != nil {
			return fail(fmt.Errorf("--entrypoint %w", err))
		}
		over.Commands[img] = cmd
	}
	if !*offline {
		over.Next = &podspec.Registry{Platform: *platform}
	}

	ctx := context.Background()
	compiled, err := compileFiles(ctx, *files, stdin, compile.Options{Namespace: *namespace, Params: ps})
	if err != nil {
		return fail(err)
	}
	list, err := podspec.Build(ctx, compiled, podspec.Options{Image: *image, Resolver: over, NativeSidecar: *nativeSidecar})
	if err != nil {
		return fail(err)
	}
	out, err := encode(list, *output)
	if err != nil {
		fmt.Fprintf(stderr, "injector compile: encode: %v\n", err)
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "injector compile: write: %v\n", err)
		return 1
	}
	return 0
}

// compileFiles reads every file (- is stdin) and compiles the run they hold,
// as `pod-runner run` does.
func compileFiles(ctx context.Context, files []string, stdin io.Reader, opts compile.Options) (*compile.Compiled, error) {
	var docs []load.Doc
	for _, name := range files {
		var r io.Reader = stdin
		var f *os.File
		if name != "-" {
			var err error
			if f, err = os.Open(name); err != nil {
				return nil, fmt.Errorf("read %s: %w", name, err)
			}
			r = f
		}
		d, err := load.Read(name, r)
		if f != nil {
			f.Close()
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	opts.FeatureFlags, opts.Defaults = compile.TektonConfig(docs)
	return compile.Compile(ctx, docs, opts)
}

// encode prints the list as format says.
func encode(list *metav1.List, format string) ([]byte, error) {
	switch format {
	case "json":
		out, err := json.MarshalIndent(list, "", "  ")
		return append(out, '\n'), err
	case "yaml-docs":
		var out []byte
		for i, it := range list.Items {
			doc, err := yaml.Marshal(it.Object)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				out = append(out, "---\n"...)
			}
			out = append(out, doc...)
		}
		return out, nil
	}
	return yaml.Marshal(list)
}
