//! The one HTTP client of the module: a nonblocking HTTP/1.1 exchange on the
//! worker's event loop (nginx's own connect, send and recv), shared by every
//! registry type. One request per connection; the response is parsed by
//! [`crate::http::ResponseParser`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use ngx::ffi::{
    ngx_close_connection, ngx_connection_log_error_e_NGX_ERROR_ERR as NGX_ERROR_ERR,
    ngx_connection_t, ngx_cycle, ngx_del_timer, ngx_event_connect_peer, ngx_event_get_peer,
    ngx_event_t, ngx_handle_read_event, ngx_handle_write_event, ngx_msec_t, ngx_peer_connection_t,
    ngx_str_t, NGX_AGAIN, NGX_LOG_ALERT, NGX_OK,
};

use super::tls::{self, Link, Peer};
use crate::http::ResponseParser;
use crate::nginx::generation::SockAddr;
use crate::nginx::log;
use crate::registry::session::{Failure, Phase};

/// The owner of a [`Fetch`]: told when the exchange ends.
pub(crate) trait FetchOwner {
    fn fetch(&mut self) -> &mut Fetch;
    /// The exchange ended; the connection is already closed.
    fn fetch_done(&mut self, result: Result<ResponseParser, Failure>);
    /// A streaming exchange received more of a 200 response's body. The
    /// owner may close the fetch from here. It says whether the data
    /// completed a message: only that keeps the stream from timing out.
    fn fetch_data(&mut self, _data: Vec<u8>) -> bool {
        false
    }
}

/// One exchange with a registry at a time.
pub(crate) struct Fetch {
    addr: SockAddr,
    /// The registry's `host:port`, for nginx's own connection messages.
    name: Box<[u8]>,
    name_str: ngx_str_t,
    pc: ngx_peer_connection_t,
    request: Vec<u8>,
    sent: usize,
    parser: Option<ResponseParser>,
    connect_timeout: ngx_msec_t,
    read_timeout: ngx_msec_t,
    /// Hand the body to the owner as it comes, and time out only when the
    /// stream delivers no complete message for the read timeout.
    streaming: bool,
    streamed: Vec<u8>,
    /// TLS to the registry (`https://`), and whether this exchange's
    /// handshake is done.
    tls: Option<Link>,
    secured: bool,
    /// Keeps the TLS sessions the registry gives (for the owner's type).
    save_session: ngx::ffi::ngx_connection_handler_pt,
}

impl Fetch {
    pub(crate) fn new(addr: SockAddr, name: &str) -> Self {
        Fetch {
            addr,
            name: name.as_bytes().into(),
            name_str: ngx_str_t {
                len: 0,
                data: ptr::null_mut(),
            },
            // SAFETY: all-zero is the initial state nginx expects of a peer
            // connection (its users ngx_pcalloc it).
            pc: unsafe { std::mem::zeroed() },
            request: Vec::new(),
            sent: 0,
            parser: None,
            connect_timeout: 0,
            read_timeout: 0,
            streaming: false,
            streamed: Vec::new(),
            tls: None,
            secured: false,
            save_session: None,
        }
    }

    /// The registry address the next exchange goes to, its name for
    /// nginx's messages, and what TLS verifies there.
    pub(crate) fn set_peer(&mut self, addr: SockAddr, name: &str, tls: Option<Peer>) {
        self.addr = addr;
        self.name = name.as_bytes().into();
        match (self.tls.as_mut(), tls) {
            (Some(link), Some(peer)) => link.set_peer(peer),
            (_, peer) => self.tls = peer.map(Link::new),
        }
    }

    /// Starts sending `request`; the owner's `fetch_done` is called when the
    /// response is complete or the exchange failed (possibly before this
    /// returns, on an immediate failure).
    ///
    /// # Safety
    /// `owner` must stay at its address until `fetch_done` or [`Fetch::close`].
    pub(crate) unsafe fn start<T: FetchOwner>(
        owner: *mut T,
        request: Vec<u8>,
        max_body: usize,
        connect_timeout: ngx_msec_t,
        read_timeout: ngx_msec_t,
        streaming: bool,
    ) {
        // SAFETY: per the contract, `owner` is live and not borrowed elsewhere.
        let f = unsafe { (*owner).fetch() };
        f.close();
        f.request = request;
        f.sent = 0;
        f.parser = Some(ResponseParser::new(max_body, false));
        f.connect_timeout = connect_timeout;
        f.read_timeout = read_timeout;
        f.streaming = streaming;
        f.streamed.clear();
        f.secured = false;
        f.save_session = Some(save_session::<T>);
        f.name_str = ngx_str_t {
            len: f.name.len(),
            data: f.name.as_ptr().cast_mut(),
        };
        // SAFETY: all-zero, then the fields ngx_event_connect_peer reads.
        f.pc = unsafe { std::mem::zeroed() };
        f.pc.sockaddr = f.addr.as_ptr();
        f.pc.socklen = f.addr.len();
        f.pc.name = &mut f.name_str;
        f.pc.get = Some(ngx_event_get_peer);
        // SAFETY: the running cycle's log outlives the worker's connections.
        f.pc.log = unsafe { (*ngx_cycle).log };
        f.pc.set_log_error(NGX_ERROR_ERR);

        // SAFETY: `pc` is filled in as nginx's upstream code fills it.
        let rc = unsafe { ngx_event_connect_peer(&mut f.pc) };
        let c = f.pc.connection;
        if c.is_null() || (rc != NGX_OK as isize && rc != NGX_AGAIN as isize) {
            f.close();
            // SAFETY: `owner` is live; `f` is no longer used.
            unsafe { (*owner).fetch_done(Err(Failure::Connect(None))) };
            return;
        }
        // SAFETY: `c` is the fresh connection nginx just set up for us.
        unsafe {
            (*c).data = owner.cast();
            (*(*c).read).handler = Some(on_read::<T>);
            (*(*c).write).handler = Some(on_write::<T>);
            // Pending long polls must not hold a worker that is shutting down.
            (*(*c).read).set_cancelable(1);
            (*(*c).write).set_cancelable(1);
        }
        if rc == NGX_AGAIN as isize {
            // SAFETY: a live connection's write event.
            unsafe { ngx::ffi::ngx_add_timer((*c).write, connect_timeout) };
            return;
        }
        // SAFETY: `owner` is live; connected at once: send now.
        unsafe { drive(owner, c, false) };
    }

    /// Closes the connection, if any, without telling the owner.
    pub(crate) fn close(&mut self) {
        let c = self.pc.connection;
        if !c.is_null() {
            self.pc.connection = ptr::null_mut();
            // SAFETY: `c` is our live connection; TLS ends first, closing
            // deletes its timers and events, and its pool goes last.
            unsafe {
                let pool = match self.tls.as_mut() {
                    Some(link) => link.shutdown(c),
                    None => ptr::null_mut(),
                };
                ngx_close_connection(c);
                tls::destroy(pool);
            }
        }
    }
}

unsafe extern "C" fn on_write<T: FetchOwner>(ev: *mut ngx_event_t) {
    // SAFETY: nginx calls connection handlers with a live event whose data
    // is the connection, and the connection's data is our owner.
    unsafe {
        let c = (*ev).data.cast::<ngx_connection_t>();
        let owner = (*c).data.cast::<T>();
        guarded(owner, || drive(owner, c, false));
    }
}

unsafe extern "C" fn on_read<T: FetchOwner>(ev: *mut ngx_event_t) {
    // SAFETY: as in `on_write`.
    unsafe {
        let c = (*ev).data.cast::<ngx_connection_t>();
        let owner = (*c).data.cast::<T>();
        guarded(owner, || drive(owner, c, true));
    }
}

unsafe extern "C" fn on_nothing(_ev: *mut ngx_event_t) {}

/// The TLS handshake ended (nginx's handshake handler calls this, with the
/// connection's handlers still its own).
unsafe extern "C" fn on_handshake<T: FetchOwner>(c: *mut ngx_connection_t) {
    // SAFETY: nginx calls it with the live connection whose data is our owner.
    unsafe {
        let owner = (*c).data.cast::<T>();
        guarded(owner, || {
            let f = (*owner).fetch();
            let done = match f.tls.as_mut() {
                Some(link) => link.finished(c),
                None => Err(Failure::Tls("TLS handshake failed".into())),
            };
            match done {
                Ok(()) => {
                    f.secured = true;
                    (*(*c).read).handler = Some(on_read::<T>);
                    (*(*c).write).handler = Some(on_write::<T>);
                    drive(owner, c, false);
                }
                Err(e) => finish(owner, Err(e)),
            }
        });
    }
}

/// nginx got a TLS session on `c`: keep it for the next exchange.
unsafe extern "C" fn save_session<T: FetchOwner>(c: *mut ngx_connection_t) {
    // SAFETY: nginx calls it with a live TLS connection whose data is our
    // owner; keeping a session cannot panic.
    unsafe {
        let owner = (*c).data.cast::<T>();
        if let Some(link) = (*owner).fetch().tls.as_mut() {
            link.keep(c);
        }
    }
}

/// Whether a nonblocking connect succeeded (`SO_ERROR`).
///
/// # Safety
/// `c` is a live connection.
pub(crate) unsafe fn connected(c: *mut ngx_connection_t) -> Result<(), std::io::Error> {
    let mut err: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a live socket; `err` and `len` are ours and sized as asked.
    let rc = unsafe {
        libc::getsockopt(
            (*c).fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            ptr::addr_of_mut!(err).cast(),
            &mut len,
        )
    };
    match (rc, err) {
        (-1, _) => Err(std::io::Error::last_os_error()),
        (_, 0) => Ok(()),
        (_, e) => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// Runs a step of the exchange of `owner`, and never lets a panic unwind
/// into nginx: one ends the exchange with a failure.
///
/// # Safety
/// `owner` is live, and `step` upholds the contracts of what it calls.
unsafe fn guarded<T: FetchOwner>(owner: *mut T, step: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(step)).is_err() {
        log!(
            NGX_LOG_ALERT,
            crate::nginx::cycle_log(),
            "registry client panicked"
        );
        // SAFETY: per the contract.
        unsafe { finish(owner, Err(Failure::Recv)) };
    }
}

/// Ends the exchange: the connection closes, then the owner hears how.
///
/// # Safety
/// `owner` is live and no borrow of its fetch is held.
unsafe fn finish<T: FetchOwner>(owner: *mut T, result: Result<ResponseParser, Failure>) {
    // SAFETY: per the contract.
    unsafe {
        (*owner).fetch().close();
        (*owner).fetch_done(result);
    }
}

enum Step {
    Pending,
    /// The TLS handshake waits for the network.
    Handshaking,
    Done(Result<ResponseParser, Failure>),
}

/// # Safety
/// `owner` and its live connection `c`.
unsafe fn drive<T: FetchOwner>(owner: *mut T, c: *mut ngx_connection_t, read: bool) {
    // SAFETY: per the contract; the borrow ends before `fetch_done`.
    let step = unsafe {
        let f = (*owner).fetch();
        if read {
            f.on_read(c)
        } else {
            f.on_write(c)
        }
    };
    match step {
        Step::Handshaking => {
            // SAFETY: the handshake under way set `c->ssl`; the connect
            // timeout bounds the handshake too.
            unsafe {
                tls::on_done(c, on_handshake::<T>);
                if (*(*c).write).timer_set() == 0 {
                    ngx::ffi::ngx_add_timer((*c).write, (*owner).fetch().connect_timeout);
                }
            }
        }
        // SAFETY: as above.
        Step::Done(result) => unsafe { finish(owner, result) },
        Step::Pending => {
            // SAFETY: as above.
            let data = unsafe { std::mem::take(&mut (*owner).fetch().streamed) };
            if data.is_empty() {
                return;
            }
            // SAFETY: as above; the owner may close the fetch, so `c` is
            // touched again only while it is still the fetch's connection.
            unsafe {
                let progress = (*owner).fetch_data(data);
                let f = (*owner).fetch();
                if progress && f.pc.connection == c {
                    // A stream times out only when no message completes:
                    // bytes that never make one (an endless head or line)
                    // do not keep it.
                    ngx::ffi::ngx_add_timer((*c).read, f.read_timeout);
                }
            }
        }
    }
}

impl Fetch {
    /// # Safety
    /// `c` is this fetch's live connection.
    unsafe fn on_write(&mut self, c: *mut ngx_connection_t) -> Step {
        // SAFETY: per the contract, throughout.
        unsafe {
            let wev = (*c).write;
            if (*wev).timedout() != 0 {
                let what = if self.sent == 0 {
                    Phase::Connect
                } else {
                    Phase::Send
                };
                return Step::Done(Err(Failure::TimedOut(what)));
            }
            if let (Some(link), false) = (self.tls.as_mut(), self.secured) {
                if let Err(e) = connected(c) {
                    return Step::Done(Err(Failure::Connect(Some(e))));
                }
                match link.start(c, self.save_session) {
                    Ok(true) => self.secured = true,
                    // The connect timer on the write event bounds it.
                    Ok(false) => return Step::Handshaking,
                    Err(e) => return Step::Done(Err(e)),
                }
            }
            let Some(send) = (*c).send else {
                return Step::Done(Err(Failure::Send));
            };
            while self.sent < self.request.len() {
                let rest = &self.request[self.sent..];
                let n = send(c, rest.as_ptr().cast_mut(), rest.len());
                if n > 0 {
                    self.sent += n as usize;
                } else if n == NGX_AGAIN as isize {
                    if ngx_handle_write_event(wev, 0) != NGX_OK as isize {
                        return Step::Done(Err(Failure::Send));
                    }
                    if (*wev).timer_set() == 0 {
                        ngx::ffi::ngx_add_timer(wev, self.connect_timeout);
                    }
                    return Step::Pending;
                } else if self.sent == 0 {
                    // A nonblocking connect reports its failure here.
                    return Step::Done(Err(Failure::Connect(None)));
                } else {
                    return Step::Done(Err(Failure::Send));
                }
            }
            // Sent: from now on only reading matters, within the read timeout,
            // and the connection waits idle (nginx closes idle connections
            // through their read handler when the worker shuts down).
            if (*wev).timer_set() != 0 {
                ngx_del_timer(wev);
            }
            (*wev).handler = Some(on_nothing);
            (*c).set_idle(1);
            ngx::ffi::ngx_add_timer((*c).read, self.read_timeout);
            self.on_read(c)
        }
    }

    /// # Safety
    /// `c` is this fetch's live connection.
    unsafe fn on_read(&mut self, c: *mut ngx_connection_t) -> Step {
        // SAFETY: per the contract, throughout.
        unsafe {
            let rev = (*c).read;
            if (*c).close() != 0 {
                return Step::Done(Err(Failure::Closing));
            }
            if (*rev).timedout() != 0 {
                return Step::Done(Err(Failure::TimedOut(Phase::Read)));
            }
            if self.sent < self.request.len() {
                // Readable before the request went out: wait for the writer.
                return Step::Pending;
            }
            let Some(recv) = (*c).recv else {
                return Step::Done(Err(Failure::Recv));
            };
            let Some(parser) = self.parser.as_mut() else {
                return Step::Done(Err(Failure::Recv));
            };
            let mut buf = [0u8; 16384];
            loop {
                let n = recv(c, buf.as_mut_ptr(), buf.len());
                if n > 0 {
                    match parser.feed(&buf[..n as usize]) {
                        Ok(true) => return Step::Done(Ok(self.take_parser())),
                        Ok(false) if self.streaming => {
                            if parser.status() == Some(200) {
                                self.streamed.extend(parser.take_body());
                            }
                        }
                        Ok(false) => continue,
                        Err(e) => return Step::Done(Err(Failure::Parse(e))),
                    }
                } else if n == 0 {
                    return Step::Done(match parser.finish() {
                        Ok(()) => Ok(self.take_parser()),
                        Err(e) => Err(Failure::Parse(e)),
                    });
                } else if n == NGX_AGAIN as isize {
                    if ngx_handle_read_event(rev, 0) != NGX_OK as isize {
                        return Step::Done(Err(Failure::Recv));
                    }
                    return Step::Pending;
                } else {
                    return Step::Done(Err(Failure::Recv));
                }
            }
        }
    }

    fn take_parser(&mut self) -> ResponseParser {
        self.parser
            .take()
            .unwrap_or_else(|| ResponseParser::new(0, false))
    }
}
