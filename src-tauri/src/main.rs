//! Adapt's desktop app: one window whose commands (`commands.rs`) delegate to `adapt-api`, the
//! same door the `adapt` CLI uses. The engine runs on the API's own thread; commands wait for
//! it on blocking worker threads, and streams (reply tokens) reach the page through
//! `tauri::ipc::Channel`s.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod bindings;
mod commands;
mod menu;
mod server_panel;

use tauri::Manager;

fn main() {
    // ADAPT_DEVICE (auto, gpu or cpu) says where the engine computes.
    let adapt = match adapt_api::Adapt::start() {
        Ok(adapt) => adapt,
        Err(e) => {
            eprintln!("error [{}]: {}", e.code, e.message);
            std::process::exit(1);
        }
    };
    if adapt.device_choice().fell_back {
        eprintln!("Running on the CPU: {}.", adapt.device_choice().reason);
    }
    let app = tauri::Builder::default()
        .manage(commands::Shared::new(adapt))
        // Size, position and maximized state come back as they were left.
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .menu(menu::build)
        .on_menu_event(menu::on_event)
        .invoke_handler(tauri::generate_handler![
            commands::list_models,
            commands::load_model,
            commands::new_chat,
            commands::send_message,
            commands::regenerate,
            commands::stop_generation,
            commands::chat_state,
            commands::set_topics,
            commands::move_message,
            commands::save_chat,
            commands::open_chat,
            commands::list_chats,
            commands::fork_chat,
            commands::close_chat,
            commands::list_datasets,
            commands::list_adapters,
            commands::list_runs,
            commands::run_details,
            commands::inspect_dataset,
            commands::dataset_lines,
            commands::training_presets,
            commands::check_training,
            commands::plan_training,
            commands::calibrate_training,
            commands::start_training,
            commands::resume_training,
            commands::stop_training,
            commands::list_sweeps,
            commands::sweep_details,
            commands::start_sweep,
            commands::resume_sweep,
            commands::stop_sweep,
            commands::list_machines,
            commands::save_machines,
            commands::check_machine,
            commands::estimate_group,
            commands::start_group_training,
            commands::import_model,
            commands::removal_plan,
            commands::delete_model,
            commands::make_variant,
            commands::pull_model,
            commands::cancel_pull,
            commands::server_status,
            commands::start_server,
            commands::stop_server,
        ])
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: the window could not open: {e}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| {
        // Quitting writes the caches of saved conversations, as leaving `adapt chat` does.
        if let tauri::RunEvent::Exit = event {
            if let Err(e) = handle.state::<commands::Shared>().close_all() {
                eprintln!("error [{}]: {}", e.code, e.message);
            }
        }
    });
}
