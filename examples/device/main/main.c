/* Example application entry point (fixture). */
void app_main(void) {}
