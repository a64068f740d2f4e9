//! A TCP proxy a test can cut and restore, to take a dependency away from a
//! server and give it back without touching the shared server itself; or
//! that, like a load balancer, closes a connection idle for too long.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};

use crate::helpers::eventually;

/// Forwards connections from its own port to `target` while open.
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: AbortHandle,
}

#[derive(Default)]
struct State {
    cut: AtomicBool,
    /// Connections turned away while cut.
    refused: AtomicUsize,
    /// Connections closed because nothing crossed them for the idle limit.
    idle_closed: AtomicUsize,
    links: Mutex<Vec<AbortHandle>>,
}

impl TcpProxy {
    /// Starts forwarding to `target` (host:port).
    pub async fn start(target: &str) -> Self {
        Self::start_with(target, None).await
    }

    /// Starts forwarding to `target`, closing any connection over which no
    /// byte passed either way for `idle`, as load balancers and NAT tables do.
    pub async fn with_idle_limit(target: &str, idle: Duration) -> Self {
        Self::start_with(target, Some(idle)).await
    }

    async fn start_with(target: &str, idle: Option<Duration>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(State::default());
        let target = target.to_owned();
        let accept_state = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                if accept_state.cut.load(Ordering::SeqCst) {
                    drop(inbound);
                    accept_state.refused.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let target = target.clone();
                let link_state = accept_state.clone();
                let link = tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    match idle {
                        None => {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                        Some(idle) => {
                            if forward_until_idle(inbound, outbound, idle).await {
                                link_state.idle_closed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                });
                accept_state.links.lock().expect("links").push(link.abort_handle());
            }
        })
        .abort_handle();
        TcpProxy { addr, state, accept }
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for link in self.state.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// Waits until the proxy turns away a connection that arrives after this
    /// call: evidence that the client behind it noticed the cut and tried
    /// again, so what it would have done over a new connection had its chance
    /// and did not happen.
    pub async fn wait_for_refused_connection(&self) {
        let before = self.state.refused.load(Ordering::SeqCst);
        eventually(Duration::from_secs(20), "a connection refused by the cut proxy", || async move {
            (self.state.refused.load(Ordering::SeqCst) > before).then_some(())
        })
        .await;
    }

    /// How many connections the idle limit has closed.
    pub fn idle_closed(&self) -> usize {
        self.state.idle_closed.load(Ordering::SeqCst)
    }

    /// `url` with its host:port replaced by the proxy's.
    pub fn url_through(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("URL with a scheme");
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        let (userinfo, _) = authority.rsplit_once('@').map_or((None, authority), |(u, h)| (Some(u), h));
        let userinfo = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let slash = if path.is_empty() && !rest.contains('/') { "" } else { "/" };
        format!("{scheme}://{userinfo}{}{slash}{path}", self.addr)
    }
}

/// Copies both ways until either side closes (false) or nothing crossed for
/// `idle` (true; both sides are then dropped, closing them).
async fn forward_until_idle(inbound: TcpStream, outbound: TcpStream, idle: Duration) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut in_read, mut in_write) = inbound.into_split();
    let (mut out_read, mut out_write) = outbound.into_split();
    let (mut up, mut down) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    loop {
        let moved = tokio::time::timeout(idle, async {
            tokio::select! {
                read = in_read.read(&mut up) => match read {
                    Ok(0) | Err(_) => false,
                    Ok(n) => out_write.write_all(&up[..n]).await.is_ok(),
                },
                read = out_read.read(&mut down) => match read {
                    Ok(0) | Err(_) => false,
                    Ok(n) => in_write.write_all(&down[..n]).await.is_ok(),
                },
            }
        })
        .await;
        match moved {
            Err(_) => return true,
            Ok(false) => return false,
            Ok(true) => {}
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
