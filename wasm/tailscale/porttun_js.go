//go:build js && wasm

package main

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall/js"

	"github.com/tailscale/wireguard-go/tun"
)

// tunMTU is the MTU of the packet port. 1280 is the IPv6 minimum and fits
// inside WireGuard over DERP without fragmentation.
const tunMTU = 1280

// inboundQueue bounds the packets waiting between the port's onmessage and
// wireguard-go's Read. When it is full, new packets are dropped (like a NIC
// ring), never blocking the JS event loop.
const inboundQueue = 512

// readBatch is how many packets one Read may hand to wireguard-go.
const readBatch = 16

// portTUN is a wireguard-go tun.Device whose "wire" is a MessagePort: every
// message is one raw IPv4 or IPv6 packet in an ArrayBuffer (or a view of one),
// in both directions, with no extra framing.
type portTUN struct {
	port   js.Value
	onMsg  js.Func
	in     chan []byte
	events chan tun.Event
	done   chan struct{}
	once   sync.Once

	// Counters, readable through the JS API's stats().
	rxPackets, txPackets, rxDropped, rxInvalid atomic.Uint64
}

func newPortTUN(port js.Value) *portTUN {
	t := &portTUN{
		port:   port,
		in:     make(chan []byte, inboundQueue),
		events: make(chan tun.Event, 1),
		done:   make(chan struct{}),
	}
	t.events <- tun.EventUp
	t.onMsg = js.FuncOf(func(this js.Value, args []js.Value) any {
		if len(args) == 0 {
			return nil
		}
		t.fromJS(args[0].Get("data"))
		return nil
	})
	port.Set("onmessage", t.onMsg)
	if start := port.Get("start"); start.Type() == js.TypeFunction {
		port.Call("start")
	}
	return t
}

var (
	jsUint8Array  = js.Global().Get("Uint8Array")
	jsArrayBuffer = js.Global().Get("ArrayBuffer")
)

// fromJS runs on the JS event loop: it must never block.
func (t *portTUN) fromJS(data js.Value) {
	var u8 js.Value
	switch {
	case data.InstanceOf(jsUint8Array):
		u8 = data
	case data.InstanceOf(jsArrayBuffer):
		u8 = jsUint8Array.New(data)
	case data.Type() == js.TypeObject && data.Get("buffer").Type() == js.TypeObject &&
		data.Get("buffer").InstanceOf(jsArrayBuffer): // another ArrayBufferView
		u8 = jsUint8Array.New(data.Get("buffer"), data.Get("byteOffset"), data.Get("byteLength"))
	default:
		t.rxInvalid.Add(1)
		return
	}
	n := u8.Get("byteLength").Int()
	if n < 20 || n > tunMTU { // shorter than an IPv4 header, or larger than the MTU
		t.rxInvalid.Add(1)
		return
	}
	pkt := make([]byte, n)
	js.CopyBytesToGo(pkt, u8)
	if v := pkt[0] >> 4; v != 4 && v != 6 {
		t.rxInvalid.Add(1)
		return
	}
	select {
	case t.in <- pkt:
	default:
		t.rxDropped.Add(1)
	}
}

func (t *portTUN) File() *os.File { return nil }

func (t *portTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var pkt []byte
	select {
	case pkt = <-t.in:
	case <-t.done:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], pkt)
		n++
		t.rxPackets.Add(1)
		if n == len(bufs) {
			return n, nil
		}
		select {
		case pkt = <-t.in:
		default:
			return n, nil
		}
	}
}

func (t *portTUN) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case <-t.done:
		return 0, os.ErrClosed
	default:
	}
	for _, b := range bufs {
		p := b[offset:]
		u8 := jsUint8Array.New(len(p))
		js.CopyBytesToJS(u8, p)
		ab := u8.Get("buffer")
		t.port.Call("postMessage", ab, []any{ab})
		t.txPackets.Add(1)
	}
	return len(bufs), nil
}

func (t *portTUN) MTU() (int, error)        { return tunMTU, nil }
func (t *portTUN) Name() (string, error)    { return "linuxvm0", nil }
func (t *portTUN) Events() <-chan tun.Event { return t.events }
func (t *portTUN) BatchSize() int           { return readBatch }

func (t *portTUN) Close() error {
	t.once.Do(func() {
		close(t.done)
		t.port.Set("onmessage", js.Null())
		t.onMsg.Release()
		close(t.events)
	})
	return nil
}
