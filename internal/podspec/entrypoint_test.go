package podspec

import (
	"context"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testRegistry serves images from memory, as a real registry does.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func configured(t *testing.T, os, arch string, entrypoint, cmd []string) ggcrv1.Image {
	t.Helper()
	cf, err := empty.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	cf.Config.Entrypoint, cf.Config.Cmd = entrypoint, cmd
	img, err := mutate.ConfigFile(empty.Image, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func push(t *testing.T, ref string, img ggcrv1.Image) ggcrv1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRegistryEntrypoint(t *testing.T) {
	host := testRegistry(t)
	both := push(t, host+"/both:1", configured(t, "linux", "amd64", []string{"/bin/app", "--flag"}, []string{"serve", "--port=1"}))
	cmdOnly := push(t, host+"/cmd:1", configured(t, "linux", "amd64", nil, []string{"/bin/sh", "-c", "echo"}))
	push(t, host+"/nothing:1", configured(t, "linux", "amd64", nil, nil))

	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: configured(t, "linux", "amd64", []string{"/amd64"}, nil), Descriptor: ggcrv1.Descriptor{Platform: &ggcrv1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: configured(t, "linux", "arm64", []string{"/arm64"}, nil), Descriptor: ggcrv1.Descriptor{Platform: &ggcrv1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		mutate.IndexAddendum{Add: configured(t, "unknown", "unknown", []string{"/attestation"}, nil), Descriptor: ggcrv1.Descriptor{Platform: &ggcrv1.Platform{OS: "unknown", Architecture: "unknown"}}},
	)
	ref, _ := name.ParseReference(host + "/multi:1")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	multi, _ := idx.Digest()
	single := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: configured(t, "linux", "s390x", []string{"/s390x"}, nil), Descriptor: ggcrv1.Descriptor{Platform: &ggcrv1.Platform{OS: "linux", Architecture: "s390x"}}})
	ref, _ = name.ParseReference(host + "/single:1")
	if err := remote.WriteIndex(ref, single); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		image    string
		hasArgs  bool
		platform string
		want     []string
		pinned   string
		err      string
	}{
		// Tekton's imageInfo: ENTRYPOINT + CMD without args, ENTRYPOINT alone with args.
		{name: "entrypoint and cmd", image: host + "/both:1", want: []string{"/bin/app", "--flag", "serve", "--port=1"}, pinned: host + "/both@" + both.String()},
		{name: "args replace cmd", image: host + "/both:1", hasArgs: true, want: []string{"/bin/app", "--flag"}, pinned: host + "/both@" + both.String()},
		{name: "cmd alone", image: host + "/cmd:1", want: []string{"/bin/sh", "-c", "echo"}, pinned: host + "/cmd@" + cmdOnly.String()},
		{name: "cmd alone with args", image: host + "/cmd:1", hasArgs: true, want: []string{"/bin/sh", "-c", "echo"}, pinned: host + "/cmd@" + cmdOnly.String()},
		{name: "by digest", image: host + "/both@" + both.String(), want: []string{"/bin/app", "--flag", "serve", "--port=1"}, pinned: host + "/both@" + both.String()},
		{name: "index: amd64", image: host + "/multi:1", want: []string{"/amd64"}, pinned: host + "/multi@" + multi.String()},
		{name: "index: arm64", image: host + "/multi:1", platform: "linux/arm64", want: []string{"/arm64"}, pinned: host + "/multi@" + multi.String()},
		{name: "index: platform missing", image: host + "/multi:1", platform: "linux/ppc64le", err: "no image for platform linux/ppc64le"},
		{name: "index of one platform", image: host + "/single:1", want: []string{"/s390x"}},
		{name: "neither entrypoint nor cmd", image: host + "/nothing:1", err: "neither ENTRYPOINT nor CMD"},
		{name: "not found", image: host + "/absent:1", err: "look up image"},
		{name: "bad reference", image: "UPPER/Case::x", err: "parse image reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Registry{Keychain: authn.NewMultiKeychain(), Platform: tt.platform}
			got, err := r.Entrypoint(context.Background(), tt.image, tt.hasArgs)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Command, tt.want) {
				t.Errorf("command = %q, want %q", got.Command, tt.want)
			}
			if tt.pinned != "" && got.Image != tt.pinned {
				t.Errorf("image = %q, want %q", got.Image, tt.pinned)
			}
		})
	}
}

func TestOverrides(t *testing.T) {
	host := testRegistry(t)
	push(t, host+"/app:1", configured(t, "linux", "amd64", []string{"/app"}, nil))
	tests := []struct {
		name  string
		o     *Overrides
		image string
		want  []string
		err   string
	}{
		{name: "override wins", o: &Overrides{Commands: map[string][]string{host + "/app:1": {"/other"}}, Next: &Registry{}}, image: host + "/app:1", want: []string{"/other"}},
		{name: "falls through to the registry", o: &Overrides{Next: &Registry{}}, image: host + "/app:1", want: []string{"/app"}},
		{name: "offline and unknown", o: &Overrides{}, image: host + "/app:1", err: "no --entrypoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.o.Entrypoint(context.Background(), tt.image, false)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Command, tt.want) {
				t.Errorf("command = %q, want %q", got.Command, tt.want)
			}
		})
	}
}

func TestParseOverride(t *testing.T) {
	tests := []struct {
		in    string
		image string
		cmd   []string
		err   bool
	}{
		{in: "busybox=/bin/sh -c", image: "busybox", cmd: []string{"/bin/sh", "-c"}},
		{in: `reg:5000/x:1=["/bin/my app", "--x"]`, image: "reg:5000/x:1", cmd: []string{"/bin/my app", "--x"}},
		{in: "busybox", err: true},
		{in: "=cmd", err: true},
		{in: "busybox=  ", err: true},
		{in: "busybox=[1]", err: true},
		{in: "busybox=[]", err: true},
	}
	for _, tt := range tests {
		image, cmd, err := ParseOverride(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("%q: err = %v", tt.in, err)
			continue
		}
		if !tt.err && (image != tt.image || !reflect.DeepEqual(cmd, tt.cmd)) {
			t.Errorf("%q: got %q %q", tt.in, image, cmd)
		}
	}
}
