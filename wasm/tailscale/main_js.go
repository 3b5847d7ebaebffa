//go:build js && wasm

// Command tailscale is the Tailscale client of <linux-vm>, compiled to
// WebAssembly. It registers globalThis.newLinuxVmTailscale(config), which
// starts a Tailscale node whose packets flow through a MessagePort (see
// porttun_js.go), so that an emulated guest can be the node's network stack.
// See README.md for the JS API.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"tailscale.com/control/controlclient"
	"tailscale.com/envknob"
	"tailscale.com/hostinfo"
	"tailscale.com/ipn"
	"tailscale.com/ipn/ipnauth"
	"tailscale.com/ipn/ipnlocal"
	"tailscale.com/ipn/store/mem"
	"tailscale.com/net/netns"
	"tailscale.com/net/tsdial"
	"tailscale.com/tailcfg"
	"tailscale.com/tsd"
	"tailscale.com/types/logid"
	"tailscale.com/wgengine"
	"tailscale.com/wgengine/netstack"
)

func main() {
	js.Global().Set("newLinuxVmTailscale", js.FuncOf(func(this js.Value, args []js.Value) any {
		if len(args) != 1 || args[0].Type() != js.TypeObject {
			return jsError("newLinuxVmTailscale(config): config must be an object")
		}
		n, err := newNode(args[0])
		if err != nil {
			return jsError(err.Error())
		}
		return n.jsObject()
	}))
	if ready := js.Global().Get("onLinuxVmTailscaleReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {} // keep the Go runtime alive for the callbacks
}

func jsError(msg string) js.Value { return js.Global().Get("Error").New(msg) }

// config is what newLinuxVmTailscale receives. The auth key is kept only in
// memory and never logged.
type config struct {
	controlURL string
	authKey    string
	hostname   string
	exitNode   string
	derpHTTP   bool
	verbose    bool
	store      js.Value // {getState(key): string, setState(key, hexValue)} or undefined
	port       js.Value // MessagePort carrying raw IP packets
	callbacks  js.Value // the config object itself: onState, onNetMap, onLoginURL, onError, onLog
}

func str(v js.Value, name string) string {
	if x := v.Get(name); x.Type() == js.TypeString {
		return x.String()
	}
	return ""
}

func parseConfig(v js.Value) (*config, error) {
	c := &config{
		controlURL: str(v, "controlURL"),
		authKey:    str(v, "authKey"),
		hostname:   str(v, "hostname"),
		exitNode:   str(v, "exitNode"),
		derpHTTP:   v.Get("insecureDERPOverHTTP").Truthy(),
		verbose:    v.Get("verbose").Truthy(),
		store:      v.Get("stateStorage"),
		port:       v.Get("packetPort"),
		callbacks:  v,
	}
	if c.controlURL == "" {
		c.controlURL = ipn.DefaultControlURL
	}
	if !strings.HasPrefix(c.controlURL, "https://") && !strings.HasPrefix(c.controlURL, "http://") {
		return nil, fmt.Errorf("controlURL must be an http(s) URL")
	}
	c.controlURL = strings.TrimRight(c.controlURL, "/")
	if c.port.Type() != js.TypeObject || c.port.Get("postMessage").Type() != js.TypeFunction {
		return nil, errors.New("packetPort must be a MessagePort")
	}
	return c, nil
}

type node struct {
	cfg  *config
	tun  *portTUN
	lb   *ipnlocal.LocalBackend
	sys  *tsd.System
	logf func(string, ...any)

	mu        sync.Mutex
	state     ipn.State
	exitSet   bool
	autoLogin bool   // login started on our own after NeedsLogin (once)
	lastErr   string // last error reported, to report each distinct error once in a row
	closed    bool
	closeOnce sync.Once
	funcs     []js.Func
}

// redactor hides the auth key should any log line ever contain it.
func (c *config) redact(s string) string {
	if c.authKey != "" && strings.Contains(s, c.authKey) {
		s = strings.ReplaceAll(s, c.authKey, "[auth key redacted]")
	}
	return s
}

func newNode(v js.Value) (*node, error) {
	cfg, err := parseConfig(v)
	if err != nil {
		return nil, err
	}
	if cfg.derpHTTP {
		// Loopback test tailnets serve DERP over plain HTTP/WebSocket.
		envknob.Setenv("TS_DEBUG_USE_DERP_HTTP", "1")
	}
	netns.SetEnabled(false)
	hostinfo.SetApp("linux-vm")

	n := &node{cfg: cfg}
	n.logf = func(format string, args ...any) {
		line := cfg.redact(fmt.Sprintf(format, args...))
		n.observeLog(line)
		if cb := cfg.callbacks.Get("onLog"); cb.Type() == js.TypeFunction {
			n.call("onLog", line)
		} else if cfg.verbose {
			log.Print(line)
		}
	}
	logf := n.logf

	var store ipn.StateStore = new(mem.Store)
	if cfg.store.Type() == js.TypeObject {
		store = &jsStore{cfg.store}
	}

	n.tun = newPortTUN(cfg.port)
	sys := tsd.NewSystem()
	sys.Set(store)
	dialer := &tsdial.Dialer{Logf: logf}
	dialer.SetBus(sys.Bus.Get())
	eng, err := wgengine.NewUserspaceEngine(logf, wgengine.Config{
		Tun:           n.tun,
		Dialer:        dialer,
		SetSubsystem:  sys.Set,
		ControlKnobs:  sys.ControlKnobs(),
		HealthTracker: sys.HealthTracker.Get(),
		ExtraRootCAs:  sys.ExtraRootCAs,
		Metrics:       sys.UserMetricsRegistry(),
		EventBus:      sys.Bus.Get(),
	})
	if err != nil {
		n.tun.Close()
		return nil, fmt.Errorf("wgengine: %w", err)
	}
	sys.Set(eng)

	ns, err := netstack.Create(logf, sys.Tun.Get(), eng, sys.MagicSock.Get(), dialer, sys.DNSManager.Get(), sys.ProxyMapper())
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("netstack: %w", err)
	}
	sys.Set(ns)
	// Packets for our tailnet address go to the TUN (the guest), not to
	// gVisor; netstack still answers MagicDNS at 100.100.100.100.
	ns.ProcessLocalIPs = false
	ns.ProcessSubnets = false
	ns.CheckLocalTransportEndpoints = true
	sys.Tun.Get().Start()

	priv, err := logid.NewPrivateID()
	if err != nil {
		return nil, err
	}
	lb, err := ipnlocal.NewLocalBackend(logf, priv.Public(), sys, controlclient.LoginEphemeral)
	if err != nil {
		eng.Close()
		return nil, fmt.Errorf("local backend: %w", err)
	}
	if err := ns.Start(lb); err != nil {
		lb.Shutdown()
		return nil, fmt.Errorf("netstack start: %w", err)
	}
	n.lb, n.sys = lb, sys

	lb.SetNotifyCallback(n.onNotify)
	go n.probeControl()
	go func() {
		prefs := &ipn.Prefs{
			ControlURL:  cfg.controlURL,
			WantRunning: true,
			Hostname:    cfg.hostname,
			RouteAll:    false,
			CorpDNS:     true,
		}
		if ip, err := netip.ParseAddr(cfg.exitNode); err == nil {
			prefs.ExitNodeIP = ip
			n.exitSet = true
		}
		if err := lb.Start(ipn.Options{UpdatePrefs: prefs, AuthKey: cfg.authKey}); err != nil {
			n.fail("start-failed", cfg.redact(err.Error()))
		}
	}()
	return n, nil
}

// call invokes a JS callback of the config, if present, shielding Go from
// exceptions thrown by it.
func (n *node) call(name string, args ...any) {
	cb := n.cfg.callbacks.Get(name)
	if cb.Type() != js.TypeFunction {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			log.Printf("linux-vm tailscale: %s callback threw: %v", name, r)
		}
	}()
	cb.Invoke(args...)
}

func (n *node) fail(code, message string) {
	message = n.cfg.redact(message)
	n.mu.Lock()
	skip := n.closed || n.lastErr == code+message
	n.lastErr = code + message
	n.mu.Unlock()
	if skip {
		return
	}
	n.call("onError", map[string]any{"code": code, "message": message})
}

var stateNames = map[ipn.State]string{
	ipn.NoState:          "NoState",
	ipn.InUseOtherUser:   "InUseOtherUser",
	ipn.NeedsLogin:       "NeedsLogin",
	ipn.NeedsMachineAuth: "NeedsMachineAuth",
	ipn.Stopped:          "Stopped",
	ipn.Starting:         "Starting",
	ipn.Running:          "Running",
}

func (n *node) onNotify(nt ipn.Notify) {
	if nt.ErrMessage != nil {
		n.fail(classify(*nt.ErrMessage), *nt.ErrMessage)
	}
	if nt.State != nil {
		n.mu.Lock()
		n.state = *nt.State
		n.mu.Unlock()
		n.call("onState", stateNames[*nt.State])
		if *nt.State == ipn.NeedsLogin && n.cfg.authKey != "" {
			// An ephemeral node with an auth key still has to be told to log in (once).
			n.mu.Lock()
			first := !n.autoLogin
			n.autoLogin = true
			n.mu.Unlock()
			if first {
				go n.lb.StartLoginInteractive(context.Background())
			}
		}
		if *nt.State == ipn.Running {
			n.mu.Lock()
			n.lastErr = ""
			n.mu.Unlock()
		}
	}
	if nt.BrowseToURL != nil {
		n.call("onLoginURL", *nt.BrowseToURL)
	}
	if nt.SelfChange != nil || nt.State != nil && *nt.State == ipn.Running {
		n.sendNetMap()
	}
}

// classify maps a control-plane error message to a stable error code.
func classify(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "auth") && strings.Contains(m, "key"),
		strings.Contains(m, "authkey"), strings.Contains(m, "pre-auth"),
		strings.Contains(m, "unauthorized"), strings.Contains(m, "invalid key"):
		return "auth-failed"
	}
	return "control-error"
}

// observeLog watches the backend's log for control errors that are not
// delivered as notifications (they only reach the log).
func (n *node) observeLog(line string) {
	const marker = "Received error: "
	if i := strings.Index(line, marker); i >= 0 {
		msg := line[i+len(marker):]
		if strings.Contains(msg, "EOF") || strings.Contains(msg, "context canceled") {
			return
		}
		n.fail(classify(msg), msg)
	}
}

// probeControl fetches the control server's public key once, so that an
// unreachable or wrong control URL is reported quickly instead of being
// retried silently with backoff.
func (n *node) probeControl() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	url := fmt.Sprintf("%s/key?v=%d", n.cfg.controlURL, tailcfg.CurrentCapabilityVersion)
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		n.fail("control-unreachable", err.Error())
		return
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		n.fail("control-unreachable", fmt.Sprintf("cannot reach control server %s: %v", n.cfg.controlURL, err))
		return
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		n.fail("control-unreachable", fmt.Sprintf("control server %s answered %s to /key", n.cfg.controlURL, res.Status))
	}
}

type jsNode struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"`
	Online    *bool    `json:"online,omitempty"`
	ExitNode  bool     `json:"exitNodeOption,omitempty"`
}

type jsNetMap struct {
	Self  jsNode   `json:"self"`
	Peers []jsNode `json:"peers"`
}

func (n *node) sendNetMap() {
	nm := n.lb.NetMapWithPeers()
	if nm == nil {
		return
	}
	out := jsNetMap{Self: jsNode{Name: nm.SelfName()}, Peers: []jsNode{}}
	for _, p := range nm.GetAddresses().All() {
		out.Self.Addresses = append(out.Self.Addresses, p.Addr().String())
	}
	for _, p := range nm.Peers {
		name := p.Name()
		if name == "" {
			name = p.Hostinfo().Hostname()
		}
		jn := jsNode{Name: name, Online: p.Online().Clone()}
		for _, a := range p.Addresses().All() {
			jn.Addresses = append(jn.Addresses, a.Addr().String())
		}
		for _, r := range p.AllowedIPs().All() {
			if r.Bits() == 0 {
				jn.ExitNode = true
			}
		}
		out.Peers = append(out.Peers, jn)
		n.maybeSetExitNode(p.StableID(), name, p.Hostinfo().Hostname())
	}
	b, err := json.Marshal(out)
	if err != nil {
		return
	}
	n.call("onNetMap", js.Global().Get("JSON").Call("parse", string(b)))
}

// maybeSetExitNode resolves an exit node given by name once it is in the netmap.
func (n *node) maybeSetExitNode(id tailcfg.StableNodeID, name, host string) {
	want := strings.TrimSuffix(strings.ToLower(n.cfg.exitNode), ".")
	if want == "" {
		return
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	short, _, _ := strings.Cut(name, ".")
	if want != name && want != short && want != strings.ToLower(host) {
		return
	}
	n.mu.Lock()
	if n.exitSet {
		n.mu.Unlock()
		return
	}
	n.exitSet = true
	n.mu.Unlock()
	go func() {
		_, err := n.lb.EditPrefs(&ipn.MaskedPrefs{Prefs: ipn.Prefs{ExitNodeID: id}, ExitNodeIDSet: true})
		if err != nil {
			n.fail("exit-node-failed", err.Error())
		}
	}()
}

func (n *node) jsObject() map[string]any {
	fn := func(f func(args []js.Value) any) js.Func {
		jf := js.FuncOf(func(this js.Value, args []js.Value) any { return f(args) })
		n.funcs = append(n.funcs, jf)
		return jf
	}
	return map[string]any{
		"login": fn(func([]js.Value) any {
			go n.lb.StartLoginInteractive(context.Background())
			return nil
		}),
		"logout": fn(func([]js.Value) any {
			return promise(func() (any, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return nil, n.lb.Logout(ctx, ipnauth.Self)
			})
		}),
		"close": fn(func([]js.Value) any {
			return promise(func() (any, error) { n.close(); return nil, nil })
		}),
		"stats": fn(func([]js.Value) any {
			n.mu.Lock()
			st := stateNames[n.state]
			n.mu.Unlock()
			return map[string]any{
				"state":           st,
				"packetsFromPort": float64(n.tun.rxPackets.Load()),
				"packetsToPort":   float64(n.tun.txPackets.Load()),
				"droppedFromPort": float64(n.tun.rxDropped.Load()),
				"invalidFromPort": float64(n.tun.rxInvalid.Load()),
			}
		}),
	}
}

// close shuts the node down. An ephemeral node is removed by the control
// server after its inactivity timeout; logout() removes it at once.
func (n *node) close() {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		n.lb.Shutdown()
		n.tun.Close()
		n.sys.Bus.Get().Close()
	})
}

func promise(f func() (any, error)) js.Value {
	var handler js.Func
	handler = js.FuncOf(func(this js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		go func() {
			defer handler.Release()
			if v, err := f(); err != nil {
				reject.Invoke(jsError(err.Error()))
			} else {
				resolve.Invoke(v)
			}
		}()
		return nil
	})
	return js.Global().Get("Promise").New(handler)
}

// jsStore persists Tailscale's state through {getState(key), setState(key,
// value)} with hex-encoded values (e.g. backed by localStorage or IndexedDB
// by the caller). Without it, state is kept in memory (ephemeral node).
type jsStore struct{ v js.Value }

func (s *jsStore) ReadState(id ipn.StateKey) ([]byte, error) {
	r := s.v.Call("getState", string(id))
	if r.Type() != js.TypeString || r.String() == "" {
		return nil, ipn.ErrStateNotExist
	}
	return hex.DecodeString(r.String())
}

func (s *jsStore) WriteState(id ipn.StateKey, b []byte) error {
	s.v.Call("setState", string(id), hex.EncodeToString(b))
	return nil
}
