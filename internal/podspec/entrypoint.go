package podspec

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Entrypoint is what an image runs when a step names no command.
type Entrypoint struct {
	// Command is the image's ENTRYPOINT, followed by its CMD when the step
	// has no args (Tekton's imageInfo); with no ENTRYPOINT, its CMD.
	Command []string
	// Image is the reference the step container should use: pinned by
	// digest when looked up in a registry, as Tekton pins it, so the
	// container runs the image whose entrypoint was read.
	Image string
}

// Resolver looks up an image's entrypoint. hasArgs tells whether the step
// gives args, which replace the image's CMD.
type Resolver interface {
	Entrypoint(ctx context.Context, image string, hasArgs bool) (Entrypoint, error)
}

// Registry looks entrypoints up in the image's registry, with credentials
// from Keychain (authn.DefaultKeychain when nil: the Docker/podman config),
// as Tekton's entrypoint cache does with its k8schain.
type Registry struct {
	Keychain authn.Keychain
	// Platform picks the image of a multi-platform index: "os/arch" or
	// "os/arch/variant". Tekton passes every platform's command to the pod
	// and picks at run time; a Plan step has one command, so it is picked
	// here.
	Platform string
	// Options are added to every remote call (tests pass a transport).
	Options []remote.Option
}

// Entrypoint implements Resolver.
func (r *Registry) Entrypoint(ctx context.Context, image string, hasArgs bool) (Entrypoint, error) {
	ref, err := name.ParseReference(image, name.WeakValidation)
	if err != nil {
		return Entrypoint{}, fmt.Errorf("parse image reference: %w", err)
	}
	kc := r.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	opts := append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}, r.Options...)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return Entrypoint{}, fmt.Errorf("look up image: %w", err)
	}
	var img ggcrv1.Image
	switch {
	case desc.MediaType.IsImage():
		if img, err = desc.Image(); err != nil {
			return Entrypoint{}, fmt.Errorf("read image: %w", err)
		}
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return Entrypoint{}, fmt.Errorf("read image index: %w", err)
		}
		if img, err = r.pick(idx); err != nil {
			return Entrypoint{}, err
		}
	default:
		return Entrypoint{}, fmt.Errorf("unsupported media type %q", desc.MediaType)
	}
	cmd, err := imageCommand(img, hasArgs)
	if err != nil {
		return Entrypoint{}, err
	}
	return Entrypoint{Command: cmd, Image: ref.Context().Digest(desc.Digest.String()).String()}, nil
}

// pick is the index's image for r.Platform; an index with one platform
// (attestations aside) gives that one.
func (r *Registry) pick(idx ggcrv1.ImageIndex) (ggcrv1.Image, error) {
	mf, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	want, err := ggcrv1.ParsePlatform(r.platform())
	if err != nil {
		return nil, fmt.Errorf("platform %q: %w", r.platform(), err)
	}
	var known []ggcrv1.Descriptor
	for _, d := range mf.Manifests {
		// Docker stores attestations as "unknown/unknown" (Tekton skips them).
		if d.Platform == nil || d.Platform.String() == "unknown/unknown" {
			continue
		}
		known = append(known, d)
		if d.Platform.Satisfies(*want) {
			return idx.Image(d.Digest)
		}
	}
	if len(known) == 1 {
		return idx.Image(known[0].Digest)
	}
	var plats []string
	for _, d := range known {
		plats = append(plats, d.Platform.String())
	}
	return nil, fmt.Errorf("no image for platform %s in the index (it has %s)", want, strings.Join(plats, ", "))
}

func (r *Registry) platform() string {
	if r.Platform == "" {
		return "linux/amd64"
	}
	return r.Platform
}

// imageCommand is Tekton's imageInfo (pkg/pod/entrypoint_lookup_impl.go):
// ENTRYPOINT, plus CMD unless the step has args; CMD alone without ENTRYPOINT.
func imageCommand(img ggcrv1.Image, hasArgs bool) ([]string, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	ep := cf.Config.Entrypoint
	if len(ep) == 0 {
		ep = cf.Config.Cmd
	} else if !hasArgs {
		ep = append(append([]string{}, ep...), cf.Config.Cmd...)
	}
	if len(ep) == 0 {
		return nil, fmt.Errorf("the image has neither ENTRYPOINT nor CMD: give the step a command")
	}
	return ep, nil
}

// Overrides answers for the images it knows (--entrypoint IMAGE=CMD) and
// asks Next for the others; with Next nil, an unknown image is an error
// (offline use).
type Overrides struct {
	Commands map[string][]string
	Next     Resolver
}

// Entrypoint implements Resolver. An override is the command the step runs
// before its args, whether or not it has args; the image is used as given.
func (o *Overrides) Entrypoint(ctx context.Context, image string, hasArgs bool) (Entrypoint, error) {
	if cmd, ok := o.Commands[image]; ok {
		return Entrypoint{Command: cmd, Image: image}, nil
	}
	if o.Next == nil {
		return Entrypoint{}, fmt.Errorf("registry lookups are off and no --entrypoint %s=CMD was given", image)
	}
	return o.Next.Entrypoint(ctx, image, hasArgs)
}

// ParseOverride parses IMAGE=CMD: CMD is a JSON array of strings, or words
// separated by spaces.
func ParseOverride(s string) (image string, cmd []string, err error) {
	image, raw, ok := strings.Cut(s, "=")
	if !ok || image == "" || strings.TrimSpace(raw) == "" {
		return "", nil, fmt.Errorf("%q: want IMAGE=CMD", s)
	}
	if strings.HasPrefix(strings.TrimSpace(raw), "[") {
		if err := json.Unmarshal([]byte(raw), &cmd); err != nil {
			return "", nil, fmt.Errorf("%q: CMD is not a JSON array of strings: %w", s, err)
		}
		if len(cmd) == 0 {
			return "", nil, fmt.Errorf("%q: empty command", s)
		}
		return image, cmd, nil
	}
	return image, strings.Fields(raw), nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
