// The console's entry: one Vue app, its pages switched by the URL's hash.
import { createApp } from "vue";
import App from "./App.vue";
import "./style.css";

createApp(App).mount("#app");
