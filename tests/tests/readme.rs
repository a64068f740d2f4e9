//! The README's grpcurl examples, run as written (with the test server's address)
//! by the real grpcurl, which asks reflection v1alpha as grpcurl 1.8 does.

use std::time::Duration;

use folio_tests::TestEnv;

/// Every `grpcurl` command in the README's code blocks.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let mut in_code = false;
    let mut commands = Vec::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if in_code && line.starts_with("grpcurl ") {
            commands.push(line.to_owned());
        }
    }
    commands
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpcurl_example_in_the_readme_works() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let commands = readme_commands();
    assert!(commands.len() >= 5, "README lost its examples: {commands:?}");

    let mut outputs = Vec::new();
    for command in &commands {
        let command = command.replace("127.0.0.1:50051", &api.addr.to_string());
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new("sh").arg("-c").arg(&command).output(),
        )
        .await
        .expect("grpcurl finishes")
        .expect("grpcurl runs (scripts/test installs it)");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{command}\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        outputs.push((command, stdout));
    }
    let find = |rpc: &str| {
        outputs
            .iter()
            .find(|(command, _)| command.contains(rpc))
            .map(|(_, out)| out.as_str())
            .unwrap_or_else(|| panic!("README has no example for {rpc}"))
    };
    assert!(find(" list").contains("folio.v1.SystemService"));
    assert!(find("Health/Check").contains("\"SERVING\""));
    let info = find("GetInfo");
    for dependency in ["postgres", "rabbitmq", "redis"] {
        assert!(info.contains(&format!("\"name\": \"{dependency}\"")), "{info}");
    }
    assert_eq!(info.matches("\"up\": true").count(), 3, "{info}");
    assert!(find("PingWorkers").contains("\"received\": true"), "{}", find("PingWorkers"));
    assert!(find("ListWorkers").contains("\"workers\""));

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}
