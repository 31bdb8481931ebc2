package up

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Resolve rewrites a topology file's text: every listen address with port 0
// (regions[].listen, sim backends' url, edge.listen, controller.listen) gets a
// free port from pick, each a different one (the kernel may hand the same
// free port out twice when nothing holds it in between; pick is asked again
// then), URLs left unset then defaulting to the new address,
// and data_dir, agents.dir and sqlite store paths become absolute against
// dir. Everything else, secrets and their ${ENV}
// references included, stays as written.
func Resolve(src []byte, dir string, pick func() (int, error)) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("topology is not a YAML mapping")
	}
	root := doc.Content[0]
	picked := map[int]bool{}
	pickNew := func() (int, error) {
		for range 100 {
			p, err := pick()
			if err != nil {
				return 0, err
			}
			if !picked[p] {
				picked[p] = true
				return p, nil
			}
		}
		return 0, errors.New("no port left that was not picked already")
	}
	fixAddr := func(n *yaml.Node, isURL bool) error {
		if n == nil {
			return nil
		}
		host := n.Value
		var u *url.URL
		if isURL {
			var err error
			if u, err = url.Parse(n.Value); err != nil {
				return err
			}
			host = u.Host
		}
		h, port, err := net.SplitHostPort(host)
		if err != nil || port != "0" {
			return nil // Validate reports malformed addresses.
		}
		p, err := pickNew()
		if err != nil {
			return err
		}
		addr := net.JoinHostPort(h, strconv.Itoa(p))
		if isURL {
			u.Host = addr
			n.Value = u.String()
		} else {
			n.Value = addr
		}
		return nil
	}
	abs := func(n *yaml.Node) {
		if n != nil && n.Value != "" && !filepath.IsAbs(n.Value) {
			n.Value = filepath.Join(dir, n.Value)
		}
	}
	for _, section := range []string{"edge", "controller"} {
		if s := get(root, section); s != nil {
			if err := fixAddr(get(s, "listen"), false); err != nil {
				return nil, err
			}
		}
	}
	if regions := get(root, "regions"); regions != nil {
		for _, r := range regions.Content {
			if err := fixAddr(get(r, "listen"), false); err != nil {
				return nil, err
			}
			if st := get(r, "store"); st != nil {
				abs(get(st, "path"))
			}
			if bs := get(r, "backends"); bs != nil && bs.Kind == yaml.MappingNode {
				for i := 1; i < len(bs.Content); i += 2 {
					for _, b := range bs.Content[i].Content {
						if k := get(b, "kind"); k != nil && k.Value == "sim" {
							if err := fixAddr(get(b, "url"), true); err != nil {
								return nil, err
							}
						}
					}
				}
			}
		}
	}
	dataDir := get(root, "data_dir")
	if dataDir == nil {
		root.Content = append(root.Content, scalar("data_dir"), scalar("data"))
		dataDir = root.Content[len(root.Content)-1]
	}
	abs(dataDir)
	agents := get(root, "agents")
	if agents == nil {
		root.Content = append(root.Content, scalar("agents"), &yaml.Node{Kind: yaml.MappingNode})
		agents = root.Content[len(root.Content)-1]
	}
	if d := get(agents, "dir"); d != nil {
		abs(d)
	} else {
		agents.Content = append(agents.Content, scalar("dir"), scalar(filepath.Join(dir, "agents")))
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// get returns the value node of key in mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
