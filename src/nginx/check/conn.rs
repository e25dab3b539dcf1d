//! One health probe on the worker's event loop: nginx's own connect, send
//! and recv, judged by `crate::check::probe::Probe`, bounded by the check's
//! `timeout` on both events. The probe's owner learns the verdict once,
//! from [`Conn::start`] (an immediate failure) or through
//! [`ProbeOwner::probe_done`], after which it drops the connection.

use std::ffi::c_void;
use std::ptr;

use ngx::ffi::{
    ngx_close_connection, ngx_connection_log_error_e_NGX_ERROR_ERR as NGX_ERROR_ERR,
    ngx_connection_t, ngx_cycle, ngx_event_connect_peer, ngx_event_get_peer, ngx_event_t,
    ngx_handle_read_event, ngx_handle_write_event, ngx_msec_t, ngx_peer_connection_t, ngx_str_t,
    NGX_AGAIN, NGX_OK,
};

use crate::check::conf::{CheckSpec, CheckType};
use crate::check::probe::{Probe, Progress};

use super::super::generation::SockAddr;
use super::super::guard;

/// Who started a probe, told of its verdict.
pub(crate) trait ProbeOwner {
    /// The probe of `slot` ended: `Ok` passed, `Err` says why it failed.
    /// The owner may drop the probe's [`Conn`] here.
    fn probe_done(&mut self, slot: usize, result: Result<(), String>);
}

/// What starting a probe gave.
pub(crate) enum Started<O: ProbeOwner> {
    /// In flight: the owner keeps it until `probe_done`.
    Pending(Box<Conn<O>>),
    /// Decided at once (the owner is not called).
    Done(Result<(), String>),
}

/// A probe in flight; boxed, so the pointers nginx keeps stay valid.
pub(crate) struct Conn<O: ProbeOwner> {
    pc: ngx_peer_connection_t,
    addr: SockAddr,
    name: String,
    name_str: ngx_str_t,
    probe: Probe,
    tcp: bool,
    sent: usize,
    owner: *mut O,
    slot: usize,
}

impl<O: ProbeOwner> Conn<O> {
    /// Connects to `addr` and sends the probe.
    ///
    /// # Safety
    /// `owner` must stay at its address while the returned connection lives.
    pub(crate) unsafe fn start(
        owner: *mut O,
        slot: usize,
        addr: std::net::SocketAddr,
        spec: &CheckSpec,
    ) -> Started<O> {
        let mut conn = Box::new(Conn {
            // SAFETY: all-zero, then the fields ngx_event_connect_peer reads.
            pc: unsafe { std::mem::zeroed() },
            addr: SockAddr::from_socket_addr(addr),
            name: addr.to_string(),
            name_str: ngx_str_t::default(),
            probe: Probe::new(spec),
            tcp: spec.conf.kind == CheckType::Tcp,
            sent: 0,
            owner,
            slot,
        });
        let c = &mut *conn;
        c.name_str = ngx_str_t {
            len: c.name.len(),
            data: c.name.as_ptr().cast_mut(),
        };
        c.pc.sockaddr = c.addr.as_ptr();
        c.pc.socklen = c.addr.len();
        c.pc.name = &mut c.name_str;
        c.pc.get = Some(ngx_event_get_peer);
        // SAFETY: the running cycle's log outlives the worker's connections.
        c.pc.log = unsafe { (*ngx_cycle).log };
        c.pc.set_log_error(NGX_ERROR_ERR);
        // SAFETY: `pc` is filled in as nginx's upstream code fills it.
        let rc = unsafe { ngx_event_connect_peer(&mut c.pc) };
        let nc = c.pc.connection;
        if nc.is_null() || (rc != NGX_OK as isize && rc != NGX_AGAIN as isize) {
            c.close();
            return Started::Done(Err("connect() failed".into()));
        }
        let me: *mut Conn<O> = c;
        let timeout = spec.conf.timeout_ms as ngx_msec_t;
        // SAFETY: the fresh connection nginx just set up for us.
        unsafe {
            (*nc).data = me.cast::<c_void>();
            (*(*nc).read).handler = Some(on_event::<O>);
            (*(*nc).write).handler = Some(on_event::<O>);
            (*(*nc).read).set_cancelable(1);
            (*(*nc).write).set_cancelable(1);
            ngx::ffi::ngx_add_timer((*nc).write, timeout);
            ngx::ffi::ngx_add_timer((*nc).read, timeout);
        }
        if rc == NGX_OK as isize {
            // SAFETY: connected at once; `me` is live and not borrowed.
            if let Some(result) = unsafe { (*me).step(nc, false) } {
                return Started::Done(result);
            }
        }
        Started::Pending(conn)
    }

    fn close(&mut self) {
        let c = self.pc.connection;
        if !c.is_null() {
            self.pc.connection = ptr::null_mut();
            // SAFETY: our live connection; closing deletes its timers and
            // events.
            unsafe { ngx_close_connection(c) };
        }
    }

    /// One step on an event: the verdict once there is one.
    ///
    /// # Safety
    /// `c` is this probe's live connection.
    unsafe fn step(&mut self, c: *mut ngx_connection_t, read: bool) -> Option<Result<(), String>> {
        // SAFETY: per the contract, throughout.
        unsafe {
            let (rev, wev) = ((*c).read, (*c).write);
            if (*rev).timedout() != 0 || (*wev).timedout() != 0 {
                return Some(Err("timed out".into()));
            }
            if !read || self.sent == 0 {
                if let Err(e) = super::super::net::exchange::connected(c) {
                    return Some(Err(format!("connect() failed ({e})")));
                }
            }
            if self.tcp {
                return Some(self.peek(c));
            }
            let request = self.probe.request();
            while self.sent < request.len() {
                let send = (*c).send?;
                let rest = &request[self.sent..];
                let n = send(c, rest.as_ptr().cast_mut(), rest.len());
                if n == NGX_AGAIN as isize {
                    if ngx_handle_write_event(wev, 0) != NGX_OK as isize {
                        return Some(Err("send() failed".into()));
                    }
                    return None;
                }
                if n <= 0 {
                    return Some(Err("send() failed".into()));
                }
                self.sent += n as usize;
            }
            let recv = (*c).recv?;
            let mut buf = [0u8; 4096];
            loop {
                let n = recv(c, buf.as_mut_ptr(), buf.len());
                let progress = if n > 0 {
                    self.probe.feed(&buf[..n as usize])
                } else if n == 0 {
                    self.probe.eof()
                } else if n == NGX_AGAIN as isize {
                    if ngx_handle_read_event(rev, 0) != NGX_OK as isize {
                        return Some(Err("recv() failed".into()));
                    }
                    return None;
                } else {
                    return Some(Err("recv() failed".into()));
                };
                match progress {
                    Progress::NeedMore => continue,
                    Progress::Pass => return Some(Ok(())),
                    Progress::Fail(why) => return Some(Err(why)),
                }
            }
        }
    }

    /// `tcp`: the C module's rule once connected: a byte waiting or none
    /// yet is a pass, a closed connection or an error a failure.
    ///
    /// # Safety
    /// `c` is a live connection.
    unsafe fn peek(&mut self, c: *mut ngx_connection_t) -> Result<(), String> {
        let mut byte = 0u8;
        // SAFETY: a live socket; one byte of ours.
        let n = unsafe { libc::recv((*c).fd, ptr::addr_of_mut!(byte).cast(), 1, libc::MSG_PEEK) };
        let again = std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock;
        match n {
            1 => Ok(()),
            -1 if again => match self.probe.connected() {
                Progress::Fail(why) => Err(why),
                _ => Ok(()),
            },
            0 => Err("the server closed the connection".into()),
            _ => Err(format!(
                "recv() failed ({})",
                std::io::Error::last_os_error()
            )),
        }
    }
}

impl<O: ProbeOwner> Drop for Conn<O> {
    fn drop(&mut self) {
        self.close();
    }
}

unsafe extern "C" fn on_event<O: ProbeOwner>(ev: *mut ngx_event_t) {
    guard((), || {
        // SAFETY: the event's data is our connection, whose data is the
        // boxed probe: alive while the connection is (its drop closes it).
        unsafe {
            let c = (*ev).data.cast::<ngx_connection_t>();
            let me = (*c).data.cast::<Conn<O>>();
            let read = (*ev).write() == 0;
            let Some(result) = (*me).step(c, read) else {
                return;
            };
            (*me).close();
            let (owner, slot) = ((*me).owner, (*me).slot);
            // The owner drops the probe now: nothing of it is used after.
            (*owner).probe_done(slot, result);
        }
    });
}
